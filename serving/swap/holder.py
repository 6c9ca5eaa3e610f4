"""The live model of one worker: validated elsewhere, loaded beside it, then one reference swapped.

A worker loads only a snapshot the validator process has accepted (serving.swap.jobs): a model
that crashes or hangs whatever loads it kills the validator, never the worker. A request reads
`holder.live` once and predicts with that object to the end, so a swap never disturbs it. Loads
are serialised by a lock that requests never take. A background thread per worker process
compares `current` with the live snapshot every MODEL_CHECK_INTERVAL seconds, so every worker
converges on `current` by itself; /-/reload only makes it happen at once.
"""

from __future__ import annotations

import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass

from model_contract import layout, logs
from serving.config import ServingConfig
from serving.errors import ModelRejected, NoModel, SnapshotNotFound
from serving.model import loader
from serving.model.loader import ServedModel
from serving.swap import runners
from serving.swap.jobs import State, Validations, Verdict
from serving.telemetry import metrics

from .background import ProcessThread

log = logs.get(__name__)
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
                 checks: Validations | None = None):
        self._config, self._load = config, load
        self.checks = checks or Validations(config, runners.run_in_process
                                            if config.isolate_validation else
                                            runners.run_inline)
        self.live: ServedModel | None = None
        self.last_rejection: Rejection | None = None
        self.validating: str | None = None
        self._refused: dict[str, str] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._watching = ProcessThread("model-watcher", self._watch, prepare=self._stop.clear)
        # The loaded challenger, when `current` comes to hold the same models
        # (serving.challenger.roles).
        self.adopt: Callable[[str], ServedModel | None] = lambda snapshot_id: None
        metrics.LOADED.set(0)

    def require(self) -> ServedModel:
        """The live model, or NoModel saying why there is none."""
        model = self.live
        if model is None:
            raise NoModel(self.why_no_model())
        return model

    def why_no_model(self) -> str:
        """One sentence: why no model is loaded (validating, refused, or nothing yet)."""
        rejection, validating = self.last_rejection, self.validating
        if validating is not None:
            return f"no model is loaded yet: snapshot {validating} is being validated"
        if rejection is None:
            return "no model is loaded yet"
        return f"no model is loaded: snapshot {rejection.snapshot} was rejected: " \
               f"{rejection.reason}"

    def current(self) -> str | None:
        """The snapshot id `current` names, or None."""
        return layout.current_snapshot_id(self._config.model_root)

    def converge(self, force: bool = False, wait: float = 0.0) -> str:
        """Serve what `current` names: 'swapped', 'unchanged' or 'validating' (ModelRejected).

        The validator's verdict comes first (waiting up to `wait` seconds for it); a snapshot
        this worker refused is asked about again only when forced (an explicit reload).
        """
        wanted = self.current()
        if wanted is None or self._serves(wanted) or (wanted in self._refused and not force):
            return "unchanged"
        with self._lock:
            if self._serves(wanted):
                return "unchanged"
            adopted = self.adopt(wanted)  # the challenger, promoted: validated and loaded
            if adopted is not None:
                self._swap(adopted)
                return "swapped"
            verdict = self._verdict(wanted, wait)
            if verdict.state is State.RUNNING:
                self.validating = wanted
                return "validating"
            self.validating = None
            if verdict.state is State.REJECTED:
                raise self._refuse(ModelRejected(wanted, verdict.reason), "validate")
            self._swap(self._load_checked(wanted))
        return "swapped"

    def validate(self, snapshot_id: str, wait: float = 0.0) -> Verdict:
        """The validator's verdict on a snapshot (RUNNING if not in yet); SnapshotNotFound."""
        live = self.live
        if live is not None and live.snapshot == snapshot_id:
            return Verdict(snapshot_id, State.ACCEPTED, "", live.version, live.versions,
                           live.layout, live.checks)
        verdict = self.checks.wait(snapshot_id, wait)
        if verdict.state is State.REJECTED:
            self._refuse(ModelRejected(snapshot_id, verdict.reason), "validate", quiet=True)
        return verdict

    def _serves(self, snapshot_id: str) -> bool:
        live = self.live
        return live is not None and live.snapshot == snapshot_id

    def _verdict(self, snapshot_id: str, wait: float) -> Verdict:
        try:
            return self.checks.wait(snapshot_id, wait)
        except SnapshotNotFound:
            return Verdict(snapshot_id, State.REJECTED, "current names a missing snapshot")

    def _load_checked(self, snapshot_id: str) -> ServedModel:
        """Load what the validator accepted; if this worker cannot, it keeps its live model."""
        try:
            model = self._load(self._config.model_root, snapshot_id,
                               self._config.golden_min_accuracy)
        except SnapshotNotFound as exc:
            raise self._refuse(ModelRejected(snapshot_id, "current names a missing snapshot"),
                               "load") from exc
        except ModelRejected as exc:
            raise self._refuse(exc, "load") from None
        log.info("model_loaded", snapshot=snapshot_id, layout=model.layout,
                 version=model.version, checks=model.checks, seconds=round(model.load_seconds, 3))
        return model

    def _refuse(self, exc: ModelRejected, phase: str, quiet: bool = False) -> ModelRejected:
        """Remember, count and log a refusal once per snapshot (`quiet`: if already known)."""
        known = self._refused.get(exc.snapshot) == exc.reason
        if len(self._refused) >= REMEMBERED_REJECTIONS and exc.snapshot not in self._refused:
            self._refused.pop(next(iter(self._refused)))
        self._refused[exc.snapshot] = exc.reason
        self.last_rejection = Rejection(exc.snapshot, exc.reason, phase, time.time())
        if quiet and known:
            return exc
        metrics.REJECTIONS.labels(phase).inc()
        live = self.live
        # phase "load": the validator accepted it, yet this worker could not load it
        log.warning("model_rejected", snapshot=exc.snapshot, reason=exc.reason, phase=phase,
                    serving=live.snapshot if live else None)
        return exc

    def _swap(self, model: ServedModel) -> None:
        old, self.live = self.live, model
        self._refused.pop(model.snapshot, None)
        metrics.model_swapped(old, model)
        log.info("model_swapped", snapshot=model.snapshot, version=model.version,
                 versions=model.versions, previous=old.snapshot if old else None)

    @property
    def _watcher(self) -> threading.Thread | None:
        """The watcher thread last started (tests check that a second start keeps it)."""
        return self._watching.thread

    def start(self) -> None:
        """Watch `current` from a background thread of this process (idempotent, fork-aware)."""
        self._watching.ensure_running()

    def stop(self) -> None:
        """Stop the background watcher and wait for it."""
        self._stop.set()
        self._watching.join(timeout=10)

    def _watch(self) -> None:
        while not self._stop.wait(self._config.check_interval):
            try:
                self.converge()
            except ModelRejected:
                pass  # refused, logged and remembered by _refuse; keep serving the live model
            except Exception as exc:  # the watcher is this worker's loop: it must not die
                log.error("model_watch_failed", error_type=type(exc).__name__, error=str(exc),
                          traceback=traceback.format_exc())
