"""Acting on the promotion guard's trip: roll back, record the refusal, and say so everywhere.

Run by the sync loop (the one writer of MODEL_ROOT) at the start of a pass. The tripped version
set is refused (RefusedBy.GUARD, with the guard's reason) so that no later poll installs it
again until the registry's production choice changes; `current` goes back to the snapshot that
served before it, which serving validated then. Comet is told only when GUARD_COMET_TAG is set
(a tag on each version that changed, and the reason in its metadata); a failed call is logged,
never a failed pass.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from model_contract import layout, logs
from model_contract.manifest import Manifest
from registry_sync.store import snapshot
from registry_sync.store.state import RefusedBy

from .errors import CometError

if TYPE_CHECKING:
    from registry_sync.sync.syncer import Syncer

    from .guard import PromotionGuard, Trip

log = logs.get(__name__)


def heed(syncer: Syncer, guard: PromotionGuard) -> None:
    """Roll back the snapshot the guard tripped on, if it is still `current`."""
    trip = guard.take()
    if trip is None:
        return
    root = syncer.root
    if layout.current_snapshot_id(root) != trip.snapshot:
        log.info("guard_trip_outdated", snapshot=trip.snapshot,
                 current=layout.current_snapshot_id(root))
        return
    target = snapshot.trusted(root, trip.previous) if trip.previous else None
    if target is None:
        log.warning("guard_rollback_impossible", snapshot=trip.snapshot, reason=trip.reason,
                    previous=trip.previous, why="the previous snapshot is no longer on disk")
        return
    refused = snapshot.trusted(root, trip.snapshot)
    reason = f"rolled back by the promotion guard: {trip.reason}"
    syncer.roll_back(trip.snapshot, reason, RefusedBy.GUARD, target)
    syncer.metrics.rollbacks.labels(check=trip.check.value).inc()
    if syncer.reporter:
        syncer.reporter.model_rolled_back(trip.snapshot, refused.versions if refused else {},
                                          target.snapshotId, reason)
    if refused is not None and guard.settings.comet_tag:
        _tell_comet(syncer, refused, target, guard.settings.comet_tag, trip)


def _tell_comet(syncer: Syncer, refused: Manifest, kept: Manifest, tag: str,
                trip: Trip) -> None:
    """Tag each version the rollback left (unchanged members are not) and write the reason in
    its metadata (`rolled_back_reason`, `rolled_back_check`, `rolled_back_at`)."""
    at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(trip.at))
    for entry in refused.models:
        if kept.versions.get(entry.name) == entry.version:
            continue
        try:
            syncer.registry.mark(entry.name, entry.version, entry.registryModelItemId, tag, {
                "rolled_back_reason": trip.reason[:500], "rolled_back_check": trip.check.value,
                "rolled_back_at": at})
        except CometError as exc:
            log.warning("guard_tag_failed", model=entry.name, version=entry.version, tag=tag,
                        error=str(exc))
            continue
        log.info("guard_tagged", model=entry.name, version=entry.version, tag=tag,
                 check=trip.check.value)
