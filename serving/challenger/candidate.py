"""The challenger of one worker: what MODEL_ROOT/candidate names, loaded beside the champion.

Loaded and checked by the same loader as the champion; a refusal is remembered, logged and
shown, and never touches the champion. When `candidate` disappears the challenger is dropped.
When `current` comes to hold the same models (same versions, items and file hashes, the
challenger promoted), the champion's holder adopts this loaded model instead of loading it again.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from model_contract import layout, logs, manifest
from serving.config import ServingConfig
from serving.errors import ModelRejected, SnapshotNotFound
from serving.model import loader
from serving.model.loader import ServedModel
from serving.swap.holder import REMEMBERED_REJECTIONS, Rejection
from serving.swap.jobs import State, Verdict

log = logs.get(__name__)
Fingerprint = tuple[tuple[str, str, str, tuple[tuple[str, str], ...]], ...]


@dataclass(frozen=True)
class Challenger:
    """A loaded challenger: the model, what it is made of, and its Comet experiment."""

    model: ServedModel
    fingerprint: Fingerprint
    experiment_key: str | None
    status: str | None


def fingerprint_of(found: manifest.Manifest) -> Fingerprint:
    """What makes two snapshots the same models: names, versions, items and file hashes."""
    return tuple((m.name, m.version, m.registryModelItemId,
                  tuple((f.path, f.sha256) for f in m.files)) for m in found.models)


def read_fingerprint(root, snapshot_id: str) -> Fingerprint | None:
    """The fingerprint of a snapshot on disk, or None when it has no readable manifest."""
    try:
        return fingerprint_of(manifest.read(layout.snapshot_path(root, snapshot_id)))
    except (ValueError, manifest.ManifestError):
        return None


class ChallengerHolder:
    """Holds this worker's challenger and follows `candidate` (never blocking a request)."""

    def __init__(self, config: ServingConfig, load: Callable[..., ServedModel] = loader.load,
                 verdict: Callable[[str], Verdict] | None = None):
        self._config, self._load = config, load
        # The validator process's verdict (shared with the champion): a worker loads only what
        # it accepted, so a model that crashes its loader never takes a worker with it.
        self._verdict = verdict
        self.validating: str | None = None
        self.held: Challenger | None = None
        self.last_rejection: Rejection | None = None
        self._refused: set[str] = set()
        self._lock = threading.Lock()

    def candidate(self) -> str | None:
        """The snapshot id `candidate` names, or None."""
        return layout.candidate_snapshot_id(self._config.model_root)

    def converge(self) -> str:
        """Hold what `candidate` names: loaded, dropped, unchanged, validating; ModelRejected."""
        wanted = self.candidate() if self._config.challenger.enabled else None
        held = self.held
        if held is not None and held.model.snapshot == wanted:
            return "unchanged"
        with self._lock:
            if wanted is None:
                return self._drop("no candidate") if self.held is not None else "unchanged"
            if wanted in self._refused:
                return self._drop("candidate refused") if self.held is not None else "unchanged"
            if not self._accepted(wanted):
                return "validating"
            self.held = self._load_checked(wanted)
        return "loaded"

    def _accepted(self, snapshot_id: str) -> bool:
        """Whether the validator accepted the snapshot (False: still running); ModelRejected."""
        if self._verdict is None:
            return True
        try:
            verdict = self._verdict(snapshot_id)
        except SnapshotNotFound:
            raise self._refuse(ModelRejected(snapshot_id, "candidate names a missing snapshot")) \
                from None
        self.validating = snapshot_id if verdict.state is State.RUNNING else None
        if verdict.state is State.REJECTED:
            raise self._refuse(ModelRejected(snapshot_id, verdict.reason))
        return verdict.state is State.ACCEPTED

    def adoptable(self, snapshot_id: str) -> ServedModel | None:
        """The held model, renamed to snapshot_id, when that snapshot holds the same models."""
        held = self.held
        if held is None:
            return None
        if held.model.snapshot != snapshot_id:
            found = read_fingerprint(self._config.model_root, snapshot_id)
            if found is None or found != held.fingerprint:
                return None
            try:  # the same models by the manifest: the files must say so too
                folder = layout.snapshot_path(self._config.model_root, snapshot_id)
                manifest.verify(folder, manifest.read(folder))
            except manifest.ManifestError:
                return None
        log.info("challenger_promoted", snapshot=snapshot_id, version=held.model.version,
                 loaded_from=held.model.snapshot)
        return dataclasses.replace(held.model, snapshot=snapshot_id)

    def _drop(self, reason: str) -> str:
        held, self.held = self.held, None
        if held is not None:
            log.info("challenger_dropped", snapshot=held.model.snapshot,
                     version=held.model.version, reason=reason)
        return "dropped"

    def _load_checked(self, snapshot_id: str) -> Challenger | None:
        root = self._config.model_root
        try:
            model = self._load(root, snapshot_id, self._config.golden_min_accuracy)
            found = manifest.read(layout.snapshot_path(root, snapshot_id))
        except (SnapshotNotFound, manifest.ManifestError) as exc:
            raise self._refuse(ModelRejected(snapshot_id, "candidate names a missing or "
                                             f"unreadable snapshot: {exc}")) from None
        except ModelRejected as exc:
            raise self._refuse(exc) from None
        primary = found.model(model.primary)
        log.info("challenger_loaded", snapshot=snapshot_id, version=model.version,
                 checks=model.checks, seconds=round(model.load_seconds, 3))
        return Challenger(model, fingerprint_of(found), primary.experimentKey if primary else None,
                          primary.status if primary else None)

    def _refuse(self, exc: ModelRejected) -> ModelRejected:
        self._drop("candidate refused")
        if len(self._refused) >= REMEMBERED_REJECTIONS:
            self._refused.pop()
        self._refused.add(exc.snapshot)
        self.last_rejection = Rejection(exc.snapshot, exc.reason, "challenger", time.time())
        log.warning("challenger_rejected", snapshot=exc.snapshot, reason=exc.reason)
        return exc
