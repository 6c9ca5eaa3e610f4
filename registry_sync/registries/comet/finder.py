"""Finding the version to serve the way the comet_ml SDK finds versions (docs/comet-api.md §4).

Per model and poll: `registry-model/items?status=S` (Model.find_versions), newest first; with a
fallback tag and no version with S, `items?tag=T`. The chosen version's facts (item id,
experiment, assets, createdAt, lastUpdated) come from `registry-model/item/details`
(Model.get_details), read only when the chosen version changes, every FACTS_REFRESH_POLLS polls
and after a webhook (a version deleted and registered again under the same number). Idle cost:
one request per model per poll, one more per model with a candidate status.

Several versions with S: the one that most recently *received* S is served, from each one's
`registry-model/history/item` (the newest MODEL_VERSION_STATUS_CHANGED to S; a version created
with S received it when created). History is read only when the set of such versions changes
(or at a refresh); where it is unavailable, `lastUpdated` stands in. Ties: createdAt, semver.

Status names: the workspace's `allowed_status_values` are read at the first poll, at each
refresh and after a webhook; a configured status that is not one of them is StatusUnknown,
naming the allowed ones (Comet compares status names case-sensitively).
"""

from __future__ import annotations

import calendar
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from common.versions import semver_key
from model_contract import logs

from ...errors import BadRequest, BadResponse, StatusUnknown, VersionNotFound
from ..protocol import Found
from ..values import ModelVersion, check_assets
from .client import CometClient

log = logs.get(__name__)

FACTS_REFRESH_POLLS = 30
CHANGED = "MODEL_VERSION_STATUS_CHANGED"


class VersionFinder:
    """Finds each model's version with a status; caches what only changes with the registry."""

    def __init__(self, client: CometClient, statuses: Iterable[str],
                 refresh_polls: int = FACTS_REFRESH_POLLS):
        self.client = client
        self.statuses = tuple(dict.fromkeys(s for s in statuses if s))
        self._refresh_polls = refresh_polls
        self._polls_since_refresh = 0
        self._stale = True
        self._facts: dict[tuple[str, str], ModelVersion] = {}
        self._rankings: dict[tuple[str, str], tuple[tuple[str, ...], Found]] = {}
        self._warned: dict[tuple[str, str], tuple] = {}  # what was last warned about

    def expire(self) -> None:
        """Read everything again at the next poll (a webhook said the registry changed)."""
        self._stale = True  # a flag only: set from the webhook's thread, read by the loop's

    def begin_poll(self) -> None:
        """Once per pass: refresh the caches (and check the status names) when due."""
        self._polls_since_refresh += 1
        if not self._stale and self._polls_since_refresh < self._refresh_polls:
            return
        self._facts.clear()
        self._rankings.clear()
        self._check_statuses()
        self._stale, self._polls_since_refresh = False, 0

    def _check_statuses(self) -> None:
        """StatusUnknown unless every configured status is one the workspace allows."""
        allowed = self.client.allowed_statuses()
        if allowed is None:
            return
        unknown = [s for s in self.statuses if s not in allowed]
        if unknown:
            raise StatusUnknown(unknown, allowed, self.client.workspace)

    def find(self, name: str, status: str, tag: str = "") -> Found:
        """The version of `name` to serve for `status` (else the newest with `tag`)."""
        listed = self.client.find_versions(name, status=status)
        if len(listed) < 2:
            self._rankings.pop((name, status), None)  # the same set again must be ranked again
            self._warned.pop((name, status), None)
        if not listed and tag:
            tagged = self.client.find_versions(name, tag=tag)
            return Found(self._facts_of(name, tagged[0]) if tagged else None)
        if not listed:
            return Found(None)
        if len(listed) == 1:
            return Found(self._facts_of(name, listed[0], status))
        return self._most_recently_promoted(name, status, listed)

    def _facts_of(self, name: str, version: str, status: str | None = None) -> ModelVersion:
        """A version's item/details, cached; the status is the one the registry filtered on."""
        facts = self._facts.get((name, version))
        if facts is None:
            facts = self.client.version_details(name, version)
            check_assets(name, facts)  # a refused answer is never cached: asked again next poll
            self._facts[(name, version)] = facts
        return replace(facts, status=status) if status else facts

    def _most_recently_promoted(self, name: str, status: str, listed: list[str]) -> Found:
        """Ranked again only when the set of versions with the status changes (or at a refresh)."""
        members = tuple(sorted(listed))
        ranked = self._rankings.get((name, status))
        if ranked is not None and ranked[0] == members:
            found = ranked[1]
        else:
            facts = [self._facts_of(name, v, status) for v in listed]
            chosen = max(facts, key=lambda f: (self._received(f, status), f.last_updated,
                                               f.created_at, semver_key(f.version)))
            found = Found(chosen, tuple(v for v in listed if v != chosen.version))
            self._rankings[(name, status)] = (members, found)
        assert found.version is not None  # ranked among versions listed with the status
        if self._warned.get((name, status)) != (members, found.version.version):
            self._warned[(name, status)] = (members, found.version.version)
            log.warning("several_versions_with_status", model=name, status=status,
                        serving=found.version.version, also_with_status=list(found.others),
                        rule="the most recently promoted is served")
        return found

    def _received(self, facts: ModelVersion, status: str) -> int:
        """When the version received the status (epoch ms); lastUpdated without a history."""
        try:
            events = self.client.version_history(facts.registry_model_item_id)
        except (BadRequest, BadResponse, VersionNotFound):
            return facts.last_updated
        return received_at(events, status, facts)


def received_at(events: Sequence[Mapping[str, Any]], status: str, facts: ModelVersion) -> int:
    """The time of the newest change to `status`; createdAt if none; lastUpdated if no events."""
    if not events:
        return facts.last_updated
    times = [_event_time(e) for e in events if e.get("actionType") == CHANGED
             and (e.get("newValue") or {}).get("registryModelStatus") == status]
    return max(times, default=facts.created_at)


def _event_time(event: Mapping[str, Any]) -> int:
    """An event's createdAt (epoch ms), else the end of its day (Comet groups events by day)."""
    stamp = event.get("createdAt")
    if isinstance(stamp, int):
        return stamp
    try:
        day = time.strptime(str(event.get("day")), "%B %d, %Y")
    except ValueError:
        return 0
    return (calendar.timegm(day) + 86_399) * 1000
