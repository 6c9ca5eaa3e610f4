"""The guard's refusals carried in the decision, so that a new leader knows them (issue 29).

A pod's refusals live in its own state file; a follower that becomes leader after the guard
rolled a version back would otherwise poll Comet, see the refused set still in Production and
install it once more. The leader therefore writes its guard refusals (at most MAX_HANDED, the
newest) in the sealed decision as `refused`: each the set's models as (name, version, item id)
and the reason. A follower adopts them into its own memory (Syncer.adopt), so that whichever pod
leads next answers "already rejected" until the registry's Production choice changes. The list
is inside the HMAC-sealed text: only a pod holding DECISION_KEY can add to it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from ..registries.values import MAX_VERSION, SEMVER

MAX_HANDED = 8  # the newest guard refusals handed over; older ones cannot be Production again
MAX_REASON = 500
MAX_MODELS = 64
_SAFE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


@dataclass(frozen=True)
class HandedRefusal:
    """A version set the guard rolled back, as the leader hands it over: its models, why."""

    models: tuple[tuple[str, str, str], ...]  # (name, version, registryModelItemId), sorted
    reason: str

    def to_json(self) -> dict[str, Any]:
        """The JSON form written in the decision."""
        return {"models": [list(m) for m in self.models], "reason": self.reason}


def handed(raw: Any, error: type[Exception]) -> tuple[HandedRefusal, ...]:
    """The `refused` list of a decision (absent: none); `error` naming the field otherwise."""
    if raw is None:
        return ()
    if not isinstance(raw, list) or len(raw) > MAX_HANDED:
        raise error(f"refused is not a list of at most {MAX_HANDED} refusals")
    return tuple(_one(item, f"refused[{i}]", error) for i, item in enumerate(raw))


def _one(raw: Any, where: str, error: type[Exception]) -> HandedRefusal:
    if not isinstance(raw, dict) or len(raw) > 4:
        raise error(f"{where} is not an object")
    reason, models = raw.get("reason"), raw.get("models")
    if not isinstance(reason, str) or len(reason) > MAX_REASON or not reason.isprintable():
        raise error(f"{where}.reason is not printable text of at most {MAX_REASON} characters")
    if not isinstance(models, list) or not 0 < len(models) <= MAX_MODELS:
        raise error(f"{where}.models is not a list of 1 to {MAX_MODELS} models")
    triples = []
    for j, model in enumerate(models):
        if not (isinstance(model, list) and len(model) == 3
                and all(isinstance(v, str) for v in model)
                and _SAFE.match(model[0]) and len(model[1]) <= MAX_VERSION
                and SEMVER.fullmatch(model[1])
                and _SAFE.match(model[2])):
            raise error(f"{where}.models[{j}] is not [name, version, registryModelItemId]")
        triples.append((model[0], model[1], model[2]))
    if len({t[0] for t in triples}) != len(triples):
        raise error(f"{where}.models names a model twice")
    return HandedRefusal(tuple(sorted(triples)), reason)
