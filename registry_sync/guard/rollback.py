"""Acting on the promotion guard's trip: roll back, record the refusal, and say so everywhere.

Run by the sync loop (the one writer of MODEL_ROOT) at the start of a pass. The tripped version
set is refused (RefusedBy.GUARD, with the guard's reason) so that no later poll installs it
again until the registry's production choice changes; `current` goes back to the snapshot that
served before it, which serving validated then. Comet is told only when GUARD_COMET_TAG is set
(a tag on each version that changed, and the reason in its metadata); a failed call is logged,
never a failed pass.

In a cluster the leader hands its guard refusals over in the decision (`handed_over`), and each
follower adopts them (`adopt`): a follower elected next refuses the set as the old leader did.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING

from model_contract import layout, logs
from model_contract.manifest import Manifest
from registry_sync.cluster.decision_refusals import MAX_HANDED, MAX_REASON, HandedRefusal
from registry_sync.errors import CometError
from registry_sync.store import snapshot
from registry_sync.store import state as state_store
from registry_sync.store.state import Memory, RefusedBy

if TYPE_CHECKING:
    from registry_sync.guard.watch import PromotionGuard, Trip
    from registry_sync.sync.syncer import Syncer

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


def handed_over(memory: Memory) -> tuple[HandedRefusal, ...]:
    """The newest guard refusals of this memory, as the decision carries them."""
    found = []
    for refusal in memory.refusals:
        if refusal.by is not RefusedBy.GUARD or not refusal.key.startswith("["):
            continue  # a snapshot-only key names no version set another pod could poll
        models = tuple(sorted((n, v, i) for n, v, i in json.loads(refusal.key)))
        reason = "".join(c if c.isprintable() else " " for c in refusal.reason[:MAX_REASON])
        found.append(HandedRefusal(models, reason))
    return tuple(found[-MAX_HANDED:])


def adopt(syncer: Syncer, handed: tuple[HandedRefusal, ...]) -> None:
    """Record the leader's guard refusals that this memory lacks (durably, before any install)."""
    memory = syncer.state.memory
    new = [h for h in handed if memory.refusal_of(state_store.set_key(h.models)) is None]
    if not new:
        return
    validated = snapshot.trusted(syncer.root, memory.last_validated)
    validated_key = state_store.manifest_key(validated) if validated else None
    for refusal in new:
        versions = {n: v for n, v, _ in refusal.models}
        memory = memory.refused(state_store.new_refusal(
            state_store.set_key(refusal.models), versions, refusal.reason, RefusedBy.GUARD,
            None), validated_key)
        log.info("refusal_adopted", versions=versions, reason=refusal.reason, by="guard")
    syncer.state.memory = memory
    syncer.save_state()


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
