"""The live model of one worker: load beside it, check, then swap one reference.

A request reads `holder.live` once and predicts with that object to the end, so a swap never
disturbs it. Loads are serialised by a lock that requests never take. A background thread per
worker process compares `current` with the live snapshot every MODEL_CHECK_INTERVAL seconds, so
every worker converges on `current` by itself; /-/reload only makes it happen at once.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from model_contract import layout, logs

from . import loader, metrics
from .config import ServingConfig
from .errors import ModelRejected, NoModel, SnapshotNotFound
from .loader import ServedModel

log = logs.get(__name__)
VALIDATED_TTL = 120.0
REMEMBERED_REJECTIONS = 32


@dataclass(frozen=True)
class Rejection:
    """The last snapshot this worker refused, and why."""

    snapshot: str
    reason: str
    phase: str
    at: float

    def to_json(self) -> dict[str, object]:
        """The rejection as shown by /api/v1/model."""
        return {"snapshot": self.snapshot, "reason": self.reason, "phase": self.phase,
                "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.at))}


class ModelHolder:
    """Holds the live model of this process and replaces it only by a checked one."""

    def __init__(self, config: ServingConfig, load: Callable[..., ServedModel] = loader.load,
                 clock: Callable[[], float] = time.monotonic):
        self._config, self._load, self._clock = config, load, clock
        self.live: ServedModel | None = None
        self.last_rejection: Rejection | None = None
        self._refused: dict[str, str] = {}
        self._validated: tuple[ServedModel, float] | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None
        self._watcher_pid: int | None = None
        # The loaded challenger, when `current` comes to hold the same models (serving.roles).
        self.adopt: Callable[[str], ServedModel | None] = lambda snapshot_id: None
        metrics.LOADED.set(0)

    def require(self) -> ServedModel:
        """The live model, or NoModel saying why there is none."""
        model = self.live
        if model is None:
            rejection = self.last_rejection
            raise NoModel("no model is loaded yet" if rejection is None else
                          f"no model is loaded: snapshot {rejection.snapshot} was rejected: "
                          f"{rejection.reason}")
        return model

    def current(self) -> str | None:
        """The snapshot id `current` names, or None."""
        return layout.current_snapshot_id(self._config.model_root)

    def converge(self, force: bool = False) -> str:
        """Serve the snapshot `current` names: 'swapped' or 'unchanged'; ModelRejected if unfit.

        A snapshot already refused is retried only when forced (an explicit reload).
        """
        wanted = self.current()
        if wanted is None or self._serves(wanted) or (wanted in self._refused and not force):
            return "unchanged"
        with self._lock:
            if self._serves(wanted):
                return "unchanged"
            model = self._take_validated(wanted) or self.adopt(wanted) or \
                self._load_checked(wanted, "load")
            self._swap(model)
        return "swapped"

    def validate(self, snapshot_id: str) -> ServedModel:
        """Load and check a snapshot without serving it; kept briefly for the reload to come."""
        with self._lock:
            live = self.live
            if live is not None and live.snapshot == snapshot_id:
                return live
            model = self._take_validated(snapshot_id, keep=True)
            if model is None:
                model = self.adopt(snapshot_id) or self._load_checked(snapshot_id, "validate")
                self._validated = (model, self._clock())
            return model

    def _serves(self, snapshot_id: str) -> bool:
        live = self.live
        return live is not None and live.snapshot == snapshot_id

    def _take_validated(self, snapshot_id: str, keep: bool = False) -> ServedModel | None:
        cached = self._validated
        if cached is None or self._clock() - cached[1] > VALIDATED_TTL:
            self._validated = None
            return None
        if cached[0].snapshot != snapshot_id:
            return None
        if not keep:
            self._validated = None
        return cached[0]

    def _load_checked(self, snapshot_id: str, phase: str) -> ServedModel:
        try:
            model = self._load(self._config.model_root, snapshot_id,
                               self._config.golden_min_accuracy)
        except SnapshotNotFound as exc:
            if phase == "validate":
                raise
            raise self._refuse(ModelRejected(snapshot_id, "current names a missing snapshot"),
                               phase) from exc
        except ModelRejected as exc:
            raise self._refuse(exc, phase) from None
        log.info("model_loaded", snapshot=snapshot_id, phase=phase, layout=model.layout,
                 version=model.version, checks=model.checks, seconds=round(model.load_seconds, 3))
        return model

    def _refuse(self, exc: ModelRejected, phase: str) -> ModelRejected:
        if len(self._refused) >= REMEMBERED_REJECTIONS:
            self._refused.pop(next(iter(self._refused)))
        self._refused[exc.snapshot] = exc.reason
        self.last_rejection = Rejection(exc.snapshot, exc.reason, phase, time.time())
        metrics.REJECTIONS.labels(phase).inc()
        live = self.live
        log.warning("model_rejected", snapshot=exc.snapshot, reason=exc.reason, phase=phase,
                    serving=live.snapshot if live else None)
        return exc

    def _swap(self, model: ServedModel) -> None:
        old, self.live = self.live, model
        self._refused.pop(model.snapshot, None)
        metrics.model_swapped(old, model)
        log.info("model_swapped", snapshot=model.snapshot, version=model.version,
                 versions=model.versions, previous=old.snapshot if old else None)

    def start(self) -> None:
        """Watch `current` from a background thread of this process (idempotent, fork-aware)."""
        thread = self._watcher
        if thread is not None and thread.is_alive() and self._watcher_pid == os.getpid():
            return
        self._stop.clear()
        self._watcher = threading.Thread(target=self._watch, name="model-watcher", daemon=True)
        self._watcher_pid = os.getpid()
        self._watcher.start()

    def stop(self) -> None:
        """Stop the background watcher and wait for it."""
        self._stop.set()
        if self._watcher is not None and self._watcher_pid == os.getpid():
            self._watcher.join(timeout=10)

    def _watch(self) -> None:
        while not self._stop.wait(self._config.check_interval):
            try:
                self.converge()
            except ModelRejected:
                pass  # refused, logged and remembered by _refuse; keep serving the live model
            except Exception as exc:  # the watcher is this worker's loop: it must not die
                log.error("model_watch_failed", error_type=type(exc).__name__, error=str(exc))
