"""One sync pass: check what is published, ask the registry, choose, build, hand over, publish.

The pass raises on registry, disk and serving trouble; the daemon's loop decides what follows.
Unsafe archives and versions that serving refuses are not failures of the pass: they are
recorded as refused (durably, in the state's memory) and not tried again until the registry's
production versions change. Rollback goes to the last snapshot serving validated and nowhere
else; a version set has at most one snapshot on disk, reused rather than built twice.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from model_contract import layout, logs
from model_contract.manifest import Manifest, ModelEntry
from registry_sync.guard import rollback as guard_rollback

from ..config import SyncConfig
from ..errors import ArchiveError, LeadershipLost, ServingUnavailable, SnapshotRejected, UnsafeValue
from ..hooks.notifier import NOT_LISTENING, ServingNotifier, Verdict
from ..ops.metrics import SyncMetrics
from ..registries.protocol import Found, Registry
from ..registries.values import ModelVersion, check_assets, check_values
from ..store import installer, publish, snapshot
from ..store import state as state_store
from ..store.state import Publication, RefusedBy, SyncState, VersionSet, manifest_key, set_key
from .context import Outcome

if TYPE_CHECKING:
    from registry_sync.guard.watch import PromotionGuard

    from ..cluster.decision_refusals import HandedRefusal
    from .candidate import CandidateFollower

log = logs.get(__name__)


def describe(chosen: list[tuple[str, ModelVersion]],
             others: dict[str, tuple[str, ...]] | None = None) -> VersionSet:
    """The chosen versions as plain data for the status (with the others carrying the status)."""
    shown = {name: {"version": v.version, "registryModelItemId": v.registry_model_item_id,
                    "experimentKey": v.experiment_key, "status": v.status}
             for name, v in chosen}
    for name, versions in (others or {}).items():
        if name in shown and versions:
            shown[name]["alsoWithStatus"] = ", ".join(versions)
    return shown


def chosen_key(chosen: list[tuple[str, ModelVersion]]) -> str:
    """The version-set key of the chosen versions."""
    return set_key((name, v.version, v.registry_model_item_id) for name, v in chosen)


def check_chosen(chosen: list[tuple[str, ModelVersion]]) -> None:
    """UnsafeValue (carrying the set's key) unless every chosen value is what Comet documents."""
    for name, version in chosen:
        try:
            check_values(name, version)
        except UnsafeValue as exc:
            exc.key = chosen_key(chosen)
            raise


class Syncer:
    """Runs sync passes for one configuration; the one owner of the state's memory."""

    def __init__(self, config: SyncConfig, registry: Registry, state: SyncState,
                 metrics: SyncMetrics, notifier: ServingNotifier | None = None,
                 should_stop: Callable[[], bool] = lambda: False, reporter=None):
        self.config, self.registry, self.state = config, registry, state
        self.metrics, self.notifier, self.should_stop = metrics, notifier, should_stop
        self.reporter = reporter
        self.root: Path = config.model_root
        self.on_progress: Callable[[], None] = lambda: None  # the daemon's heartbeat
        self.candidates: CandidateFollower | None = None  # when a challenger is followed
        self.may_publish: Callable[[], bool] = lambda: True  # a leader: still leading?
        self.guard: PromotionGuard | None = None  # when GUARD_ENABLED

    def save_state(self) -> None:
        """Write the state durably."""
        state_store.save(self.root, self.state)

    def _remember(self, memory: state_store.Memory) -> None:
        self.state.memory = memory
        self.save_state()

    def still_going(self) -> bool:
        """Polled at every step of progress: moves the heartbeat; True when asked to stop."""
        self.on_progress()
        return self.should_stop()

    def progress(self) -> None:
        """Move the heartbeat."""
        self.on_progress()

    def publishing_allowed(self) -> bool:
        """False once a leader is deposed."""
        return self.may_publish()

    def choose(self) -> tuple[list[tuple[str, ModelVersion]], str | None]:
        """The production version of every configured model, or why not to publish now."""
        chosen, missing, others = [], [], {}
        self.registry.begin_poll()
        for name in self.config.models:
            found: Found = self.registry.find(name, self.config.status, self.config.tag)
            if found.version is None:
                missing.append(name)
            else:
                check_assets(name, found.version)
                chosen.append((name, found.version))
                others[name] = found.others
        check_chosen(chosen)  # before any value reaches the state, a metric label or a log
        self.state.desired = describe(chosen, others)
        self.metrics.set_versions(self.metrics.desired, {n: v.version for n, v in chosen})
        if missing:
            return chosen, f"no version with status {self.config.status!r}: {', '.join(missing)}"
        if self.config.grouping == "experiment" and len(chosen) > 1:
            return chosen, self._experiment_mismatch(chosen)
        return chosen, None

    @staticmethod
    def _experiment_mismatch(chosen: list[tuple[str, ModelVersion]]) -> str | None:
        newest = max(chosen, key=lambda c: c[1].created_at)[1].experiment_key
        behind = [name for name, v in chosen if v.experiment_key != newest]
        if not behind:
            return None
        return (f"waiting for {', '.join(behind)} to be promoted from experiment {newest} "
                "(models move together; SYNC_GROUPING=independent to lift this)")

    def sync_once(self) -> Outcome:
        """One pass; raises CometError, InsufficientSpace, ServingUnavailable, OSError, Stopped.

        The guard's trip first (a rollback), the champion, then the challenger (found the same
        way, its own status).
        """
        if self.guard is not None:
            guard_rollback.heed(self, self.guard)
        outcome = self._sync_champion()
        if self.candidates is not None:
            self.candidates.follow()
        return outcome

    def _sync_champion(self) -> Outcome:
        self.confirm_published()
        try:
            chosen, waiting = self.choose()
        except UnsafeValue as exc:
            return self.refuse_unsafe(exc)
        self.state.waiting = waiting
        if waiting:
            return Outcome("waiting", waiting)
        return self.bring_to(chosen, self.install)

    def bring_to(self, chosen: list[tuple[str, ModelVersion]],
                 install: snapshot.Installer) -> Outcome:
        """Publish exactly the chosen versions unless published or refused (followers too)."""
        key = chosen_key(chosen)
        current = snapshot.trusted(self.root, layout.current_snapshot_id(self.root))
        if current is not None and manifest_key(current) == key:
            return Outcome("unchanged", snapshot_id=current.snapshotId)
        refusal = self.state.memory.refusal_of(key)
        if refusal:
            return Outcome("rejected", f"already rejected: {refusal.reason}", refusal.snapshot)
        staged = snapshot.find_set(self.root, key)
        if staged is None:
            self._prune(room_for_one=True)
            try:
                staged = snapshot.build(self.root, chosen, install)
            except ArchiveError as exc:
                return self.refuse(key, {n: v.version for n, v in chosen}, str(exc), None,
                                    RefusedBy.ARCHIVE)
        return self._hand_over(staged)

    def install(self, name: str, version: ModelVersion, work: Path, target: Path) -> ModelEntry:
        """Download one version from the registry into target (parts under work)."""
        return installer.install(self.registry, name, version, work, target, self.config.limits,
                                 self.metrics.bytes.inc, self.still_going)

    def _hand_over(self, built: Manifest) -> Outcome:
        """Validate with serving (if any), publish, ask serving to reload, prune."""
        snapshot_id, verdict = built.snapshotId, Verdict.ACCEPTED
        if self.notifier is not None:
            self.on_progress()
            try:
                verdict = self.notifier.validate(snapshot_id)
            except SnapshotRejected as exc:
                snapshot.discard(self.root, snapshot_id)
                return self.refuse(manifest_key(built), built.versions, exc.reason,
                                    snapshot_id, RefusedBy.SERVING)
            # ServingUnavailable propagates: the staged snapshot stays, and the next pass
            # hands the same folder over again instead of building another copy
            if verdict is Verdict.NOT_UP:
                log.info("validation_skipped", snapshot=snapshot_id, reason="serving not up")
        if verdict is Verdict.ACCEPTED:
            self._remember(self.state.memory.validated(snapshot_id))
        if not self.may_publish():  # deposed while building or validating: the next leader's
            raise LeadershipLost(f"{snapshot_id} not published: this sidecar no longer leads")
        if self.guard is not None:  # the previous one's figures, read before the swap
            self.guard.watch(built, snapshot.read_current(self.root))
        self._publish(built, verdict is Verdict.ACCEPTED)
        self._prune()
        if self.reporter:
            self.reporter.model_synced(snapshot_id, built.versions)
        return Outcome("published", snapshot_id=snapshot_id)

    def _prune(self, room_for_one: bool = False) -> None:
        """Keep KEEP_SNAPSHOTS (one fewer before building), never current or last validated."""
        memory = self.state.memory
        keep = self.config.keep_snapshots - (1 if room_for_one else 0)
        kept = {v for v in (memory.last_validated, *(self.guard.keep() if self.guard else ()))
                if v}
        removed = publish.prune(self.root, keep, kept, {r.key for r in memory.refusals})
        if removed:
            log.info("snapshots_pruned", removed=removed)

    def _publish(self, built: Manifest, validated: bool) -> None:
        """Remember, then point `current` at a snapshot and tell serving."""
        publication = Publication(built.snapshotId, built.versions, time.time(), validated)
        self._remember(replace(self.state.memory, published=publication))
        publish.publish(self.root, built.snapshotId)
        self.metrics.set_versions(self.metrics.published, built.versions)
        self.metrics.snapshot.info({"snapshot": built.snapshotId})
        log.info("model_published", snapshot=built.snapshotId, versions=built.versions,
                 validated=validated)
        self._notify_reload(built.snapshotId)

    def confirm_published(self) -> None:
        """Have serving check a snapshot published while it was down; roll back if refused."""
        published = self.state.memory.published
        if self.notifier is None or published is None or published.validated:
            return
        snapshot_id = published.snapshot
        if layout.current_snapshot_id(self.root) != snapshot_id:
            return
        try:
            verdict = self.notifier.validate(snapshot_id)
        except SnapshotRejected as exc:
            self.roll_back(snapshot_id, exc.reason)
            return
        if verdict is Verdict.ACCEPTED:
            self._remember(self.state.memory.validated(snapshot_id))
            log.info("published_snapshot_validated", snapshot=snapshot_id)

    def roll_back(self, refused_id: str, reason: str, by: RefusedBy = RefusedBy.SERVING,
                  target: Manifest | None = None) -> None:
        """`current` is refused (by serving, or the guard): back to `target`, else to a
        validated snapshot, or to none."""
        found = next((m for m in snapshot.installed_manifests(self.root)
                      if m.snapshotId == refused_id), None)
        published = self.state.memory.published
        versions = found.versions if found else dict(published.versions if published else {})
        key = manifest_key(found) if found else f"snapshot:{refused_id}"
        self.refuse(key, versions, reason, refused_id, by)
        target = target or self._rollback_target(refused_id)
        if target is not None:
            log.warning("model_rolled_back", refused=refused_id, to=target.snapshotId,
                        by=by.value, reason=reason)
            self._remember(self.state.memory.validated(target.snapshotId))
            self._publish(target, validated=True)
        else:
            self._remember(replace(self.state.memory, published=None))
            publish.withdraw(self.root)
            log.warning("model_withdrawn", refused=refused_id,
                        reason="no snapshot that serving validated to roll back to")
        snapshot.discard(self.root, refused_id)

    def _rollback_target(self, refused_id: str) -> Manifest | None:
        """The last validated snapshot; without one, an older snapshot serving accepts now."""
        last = snapshot.trusted(self.root, self.state.memory.last_validated)
        if last is not None and last.snapshotId != refused_id:
            return last
        assert self.notifier is not None  # only serving's refusal starts a rollback
        for candidate in snapshot.trusted_manifests(self.root):
            key = manifest_key(candidate)
            if candidate.snapshotId == refused_id or self.state.memory.refusal_of(key):
                continue
            try:
                verdict = self.notifier.validate(candidate.snapshotId)
            except SnapshotRejected as exc:
                snapshot.discard(self.root, candidate.snapshotId)
                self.refuse(key, candidate.versions, exc.reason, candidate.snapshotId,
                             RefusedBy.SERVING)
                continue
            if verdict is Verdict.ACCEPTED:
                self._remember(self.state.memory.validated(candidate.snapshotId))
                return candidate
            return None  # serving went away: nothing is confirmed
        return None

    def _notify_reload(self, snapshot_id: str) -> None:
        if self.notifier is None:
            return
        try:
            outcome = self.notifier.reload(snapshot_id)
            log.info("serving_reloaded" if outcome != NOT_LISTENING else "serving_not_up",
                     snapshot=snapshot_id, outcome=outcome)
        except (ServingUnavailable, SnapshotRejected) as exc:
            # the symlink is the truth: every worker converges on `current` by itself
            log.warning("serving_reload_failed", snapshot=snapshot_id, error=str(exc))

    def adopt_refusals(self, handed: tuple[HandedRefusal, ...]) -> None:
        """Record the leader's guard refusals this pod lacks (it may lead next)."""
        guard_rollback.adopt(self, handed)

    def refuse_unsafe(self, exc: UnsafeValue) -> Outcome:
        """A chosen version carries a value that must not go further: refused once, named."""
        refusal = self.state.memory.refusal_of(exc.key)
        if refusal:
            return Outcome("rejected", f"already rejected: {refusal.reason}", refusal.snapshot)
        shown = {exc.model: f"(refused {exc.field})"}
        return self.refuse(exc.key, shown, str(exc), None, RefusedBy.REGISTRY)

    def refuse(self, key: str, shown: dict[str, str], reason: str, snapshot_id: str | None,
                by: RefusedBy) -> Outcome:
        """Remember durably that this version set must not be tried again."""
        refusal = state_store.new_refusal(key, shown, reason, by, snapshot_id)
        validated = snapshot.trusted(self.root, self.state.memory.last_validated)
        self._remember(self.state.memory.refused(
            refusal, manifest_key(validated) if validated else None))
        self.metrics.rejections.labels(reason=by.value).inc()
        log.error("model_rejected", versions=shown, by=by.value, reason=reason,
                  snapshot=snapshot_id)
        if self.reporter:
            self.reporter.model_rejected(snapshot_id or "", shown, reason)
        return Outcome("rejected", reason, snapshot_id)
