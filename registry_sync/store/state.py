"""The sidecar's memory and status, kept in MODEL_ROOT/.sync-state.json across restarts.

The memory (`Memory`) is what must survive a crash: the last snapshot serving validated (the only
rollback target), what is published and whether serving checked it, and the version sets that
were refused and by whom. It is written durably (temp file fsynced, renamed, folder fsynced)
before the step it describes takes effect. The rest of `SyncState` is the status that
`registry-sync status` and `/status` show. An unreadable or older file gives a fresh state.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import Any

from model_contract import layout, logs
from model_contract.manifest import Manifest, write_durably

log = logs.get(__name__)

VersionSet = dict[str, dict[str, str]]  # model name -> {"version", "registryModelItemId", ...}
MAX_REFUSALS = 20  # only recent refusals matter: old ones cannot come back as production


def set_key(versions: Iterable[tuple[str, str, str]]) -> str:
    """A stable text key of a version set from (name, version, registry item id) triples."""
    return json.dumps(sorted([n, v, i] for n, v, i in versions))


def manifest_key(found: Manifest) -> str:
    """The version-set key of a snapshot."""
    return set_key((m.name, m.version, m.registryModelItemId) for m in found.models)


class RefusedBy(StrEnum):
    """Who refused a version set."""

    SERVING = "serving"
    ARCHIVE = "archive"
    REGISTRY = "registry"  # a value from the registry that is not what Comet documents
    GUARD = "guard"  # served, then rolled back by the promotion guard (registry_sync.guard)


@dataclass(frozen=True)
class Refusal:
    """A version set that must not be tried again, and why."""

    key: str
    versions: Mapping[str, str]
    reason: str
    by: RefusedBy
    snapshot: str | None
    at: float


@dataclass(frozen=True)
class Publication:
    """What `current` was last pointed at, and whether serving had checked it."""

    snapshot: str
    versions: Mapping[str, str]
    at: float
    validated: bool


@dataclass(frozen=True)
class Memory:
    """What the sidecar must not forget: last validated snapshot, publication, refusals."""

    last_validated: str | None = None
    published: Publication | None = None
    refusals: tuple[Refusal, ...] = ()

    def refusal_of(self, key: str) -> Refusal | None:
        """The recorded refusal of this version set, if any."""
        return next((r for r in self.refusals if r.key == key), None)

    def validated(self, snapshot_id: str) -> Memory:
        """This memory, with serving having accepted snapshot_id."""
        published = self.published
        if published is not None and published.snapshot == snapshot_id:
            published = replace(published, validated=True)
        return replace(self, last_validated=snapshot_id, published=published)

    def refused(self, refusal: Refusal, last_validated_key: str | None) -> Memory:
        """This memory with one more refusal; a refused set is no rollback target."""
        kept = tuple(r for r in self.refusals if r.key != refusal.key)[-(MAX_REFUSALS - 1):]
        last = None if last_validated_key == refusal.key else self.last_validated
        return replace(self, refusals=(*kept, refusal), last_validated=last)


def new_refusal(key: str, versions: Mapping[str, str], reason: str, by: RefusedBy,
                snapshot_id: str | None) -> Refusal:
    """A refusal made now."""
    return Refusal(key, dict(versions), reason, by, snapshot_id, time.time())


@dataclass(frozen=True)
class CandidateStatus:
    """What the last pass did with the challenger (the candidate status's version set)."""

    outcome: str  # linked, unchanged, none, champion, rejected, failed
    detail: str = ""
    snapshot: str | None = None
    versions: Mapping[str, str] = field(default_factory=dict)


@dataclass
class SyncState:
    """What the daemon wants (desired), how its passes went, and its memory."""

    desired: VersionSet = field(default_factory=dict)
    waiting: str | None = None
    memory: Memory = field(default_factory=Memory)
    last_error: dict[str, Any] | None = None
    last_success_at: float | None = None
    last_attempt_at: float | None = None
    consecutive_failures: int = 0
    candidate: CandidateStatus | None = None

    @property
    def rejected(self) -> list[dict[str, Any]]:
        """The refusals as shown by /status (oldest first)."""
        return [_refusal_json(r) for r in self.memory.refusals]

    def to_dict(self) -> dict[str, Any]:
        """The state as plain JSON-ready data."""
        data = asdict(self)
        data["memory"] = {
            "last_validated": self.memory.last_validated,
            "published": asdict(self.memory.published) if self.memory.published else None,
            "refusals": self.rejected,
        }
        return data


def _refusal_json(refusal: Refusal) -> dict[str, Any]:
    return {**asdict(refusal), "by": refusal.by.value}


def _memory(raw: Mapping[str, Any]) -> Memory:
    published = raw.get("published")
    return Memory(
        last_validated=raw.get("last_validated"),
        published=Publication(**published) if published else None,
        refusals=tuple(Refusal(**{**r, "by": RefusedBy(r["by"])})
                       for r in raw.get("refusals") or ()),
    )


def load(root: Path) -> SyncState:
    """The saved state, or a fresh one if there is none or it cannot be read (or is older)."""
    try:
        raw = json.loads((root / layout.STATE).read_text(encoding="utf-8"))
        status = {k: v for k, v in raw.items()
                  if k in SyncState.__dataclass_fields__ and k not in ("memory", "candidate")}
        candidate = raw.get("candidate")
        return SyncState(**status, memory=_memory(raw.get("memory") or {}),
                         candidate=CandidateStatus(**candidate) if candidate else None)
    except FileNotFoundError:
        return SyncState()
    except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
        log.warning("state_unreadable", error=f"{type(exc).__name__}: {exc}"[:300],
                    action="starting from a fresh state")
        return SyncState()


def save(root: Path, state: SyncState) -> None:
    """Write the state durably: temp file fsynced, renamed over the old one, folder fsynced."""
    write_durably(root / layout.STATE, json.dumps(state.to_dict(), indent=2, sort_keys=True,
                                                  default=str))
