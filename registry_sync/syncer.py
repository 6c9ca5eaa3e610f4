"""One sync pass: ask the registry, choose, build a snapshot if needed, hand it over, publish.

The pass raises on registry, disk and serving trouble; the daemon's loop decides what follows.
Unsafe archives and versions that serving refuses are not failures of the pass: they are
recorded as rejected and not tried again until the registry's production versions change.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from model_contract import layout, logs, manifest
from model_contract.manifest import Manifest, ModelEntry

from . import installer, publish, snapshot
from .comet import CometClient
from .config import SyncConfig
from .errors import ArchiveError, ServingUnavailable, SnapshotRejected
from .metrics import SyncMetrics
from .notifier import ServingNotifier
from .registry import ModelVersion, check_assets, find_production_version
from .state import SyncState, VersionSet

log = logs.get(__name__)


@dataclass(frozen=True)
class Outcome:
    """What a pass did: published, unchanged, waiting or rejected, and why."""

    kind: str
    detail: str = ""
    snapshot_id: str | None = None


def describe(chosen: list[tuple[str, ModelVersion]]) -> VersionSet:
    """The chosen versions as plain data for the status and the rejection memory."""
    return {name: {"version": v.version, "registryModelItemId": v.registry_model_item_id,
                   "experimentKey": v.experiment_key, "status": v.status}
            for name, v in chosen}


def _manifest_key(found: Manifest | None) -> list[tuple[str, str, str]] | None:
    if found is None:
        return None
    return [(m.name, m.version, m.registryModelItemId) for m in found.models]


class Syncer:
    """Runs sync passes for one configuration."""

    def __init__(self, config: SyncConfig, client: CometClient, state: SyncState,
                 metrics: SyncMetrics, notifier: ServingNotifier | None = None,
                 should_stop: Callable[[], bool] = lambda: False, reporter=None):
        self.config, self.client, self.state = config, client, state
        self.metrics, self.notifier, self.should_stop = metrics, notifier, should_stop
        self.reporter = reporter
        self.root: Path = config.model_root

    def choose(self) -> tuple[list[tuple[str, ModelVersion]], str | None]:
        """The production version of every configured model, or why not to publish now."""
        chosen, missing = [], []
        for name in self.config.models:
            version = find_production_version(self.client.get_model(name), self.config.status,
                                              self.config.tag)
            if version is None:
                missing.append(name)
            else:
                check_assets(name, version)
                chosen.append((name, version))
        self.state.desired = describe(chosen)
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
        """One pass; raises CometError, InsufficientSpace, OSError on failure."""
        rolled_back = self._confirm_published()
        if rolled_back:
            return rolled_back
        chosen, waiting = self.choose()
        self.state.waiting = waiting
        if waiting:
            return Outcome("waiting", waiting)
        current = snapshot.read_current(self.root)
        wanted = [(name, v.version, v.registry_model_item_id) for name, v in chosen]
        if _manifest_key(current) == wanted:
            return Outcome("unchanged", snapshot_id=current.snapshotId)
        versions = describe(chosen)
        known = self.state.is_rejected(versions)
        if known:
            return Outcome("rejected", f"already rejected: {known['reason']}", known["snapshot"])
        try:
            built = snapshot.build(self.root, chosen, self._install)
        except ArchiveError as exc:
            return self._reject(versions, str(exc), None, "archive")
        return self._hand_over(built, versions)

    def _install(self, name: str, version: ModelVersion, work: Path, target: Path) -> ModelEntry:
        return installer.install(self.client, name, version, work, target, self.config.limits,
                                 self.metrics.bytes.inc, self.should_stop)

    def _hand_over(self, built: Manifest, versions: VersionSet) -> Outcome:
        """Validate with serving (if any), publish, ask serving to reload, prune."""
        snapshot_id, validated = built.snapshotId, True
        if self.notifier is not None:
            try:
                validated = self.notifier.validate(snapshot_id)
            except SnapshotRejected as exc:
                snapshot.discard(self.root, snapshot_id)
                return self._reject(versions, exc.reason, snapshot_id, "serving")
            # ServingUnavailable propagates: the staged snapshot stays, and the next pass
            # hard-links from it instead of downloading again
            if not validated:
                log.info("validation_skipped", snapshot=snapshot_id, reason="serving not up")
        self._publish(built, validated)
        removed = publish.prune(self.root, self.config.keep_snapshots)
        if removed:
            log.info("snapshots_pruned", removed=removed)
        if self.reporter:
            self.reporter.model_synced(snapshot_id, built.versions)
        return Outcome("published", snapshot_id=snapshot_id)

    def _publish(self, built: Manifest, validated: bool) -> None:
        """Point `current` at a snapshot and tell serving; remember whether serving checked it."""
        publish.publish(self.root, built.snapshotId)
        self.state.published = {"snapshot": built.snapshotId, "versions": built.versions,
                                "at": time.time(), "validated": validated}
        self.metrics.set_versions(self.metrics.published, built.versions)
        self.metrics.snapshot.info({"snapshot": built.snapshotId})
        log.info("model_published", snapshot=built.snapshotId, versions=built.versions,
                 validated=validated)
        self._notify_reload(built.snapshotId)

    def _confirm_published(self) -> Outcome | None:
        """Have serving check a snapshot published while it was down; roll back if refused."""
        published = self.state.published
        if self.notifier is None or not published or published.get("validated", True):
            return None
        snapshot_id = published["snapshot"]
        if layout.current_snapshot_id(self.root) != snapshot_id:
            return None
        try:
            if not self.notifier.validate(snapshot_id):
                return None  # serving is still not up: ask again on the next pass
        except SnapshotRejected as exc:
            return self._roll_back(snapshot_id, exc.reason)
        published["validated"] = True
        log.info("published_snapshot_validated", snapshot=snapshot_id)
        return None

    def _roll_back(self, snapshot_id: str, reason: str) -> Outcome:
        """Serving refused what `current` holds: publish the newest other snapshot instead."""
        refused = manifest.read(layout.snapshot_path(self.root, snapshot_id))
        versions = {m.name: {"version": m.version, "registryModelItemId": m.registryModelItemId}
                    for m in refused.models}
        previous = next((m for m in snapshot.installed_manifests(self.root)
                         if m.snapshotId != snapshot_id), None)
        if previous is not None:
            log.warning("model_rolled_back", refused=snapshot_id, to=previous.snapshotId)
            self._publish(previous, validated=False)  # checked again on the next pass
        return self._reject(versions, reason, snapshot_id, "serving")

    def _notify_reload(self, snapshot_id: str) -> None:
        if self.notifier is None:
            return
        try:
            outcome = self.notifier.reload(snapshot_id)
            log.info("serving_reloaded", snapshot=snapshot_id, outcome=outcome)
        except (ServingUnavailable, SnapshotRejected) as exc:
            # the symlink is the truth: every worker converges on `current` by itself
            log.warning("serving_reload_failed", snapshot=snapshot_id, error=str(exc))

    def _reject(self, versions: VersionSet, reason: str, snapshot_id: str | None,
                by: str) -> Outcome:
        self.state.reject(versions, reason, snapshot_id)
        self.metrics.rejections.labels(reason=by).inc()
        shown = {n: v["version"] for n, v in versions.items()}
        log.error("model_rejected", versions=shown, by=by, reason=reason, snapshot=snapshot_id)
        if self.reporter:
            self.reporter.model_rejected(snapshot_id or "", shown, reason)
        return Outcome("rejected", reason, snapshot_id)
