"""Champion and challenger together: who answers a request, and what is said about both.

The champion answers unless the client's key falls in the canary share (and the guard has not
ended the canary); a canary answer the challenger fails is answered by the champion instead.
After a champion answer is sent, the same input goes to the shadow scorer. One watcher thread
per worker follows `current` first, then `candidate`, so a promoted challenger is adopted by
the champion before it is dropped as a challenger.
"""

from __future__ import annotations

import contextlib
import enum
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from model_contract import logs

from . import champion_metrics, deadline, overruns, role_metrics
from .background import ProcessThread
from .canary import CanaryGuard, in_canary
from .challenger import Challenger, ChallengerHolder
from .comparison import ComparisonLog, Sample
from .config import ServingConfig
from .errors import InvalidInput, ModelRejected, PredictionTimeout
from .holder import ModelHolder
from .loader import ServedModel
from .predictions import Predictions, checked
from .shadow import ModelInput, ShadowInput, ShadowScorer

log = logs.get(__name__)
TOTALS_TTL = 1.0  # seconds the all-workers figures are reused (they read every worker's file)


class Role(enum.Enum):
    """Which model answered."""

    CHAMPION = "champion"
    CHALLENGER = "challenger"


@dataclass(frozen=True)
class Answer:
    """A prediction and who made it."""

    role: Role
    model: ServedModel
    predictions: Predictions


@dataclass(frozen=True)
class Tracking:
    """The figures of one challenger in this worker: shadow comparisons and the canary guard."""

    challenger: Challenger
    comparisons: ComparisonLog
    guard: CanaryGuard


class Roles:
    """Routes requests between champion and challenger and reports on both."""

    def __init__(self, config: ServingConfig, champion: ModelHolder,
                 challenger: ChallengerHolder):
        self._config, self.champion, self.challenger = config, champion, challenger
        self.settings = config.challenger
        self.scorer = ShadowScorer(self.settings.queue_size, config.predict_timeout
                                   if self.settings.shadow_process else None)
        self._tracking: Tracking | None = None
        self._totals: tuple[float, str, role_metrics.ShadowTotals] | None = None
        self._stop = threading.Event()
        self._watching = ProcessThread("role-watcher", self._watch, prepare=self._stop.clear)
        self.verdict: Any = None  # serving.verdict.VerdictSender when VERDICT_ENABLED
        champion.adopt = challenger.adoptable

    def tracking(self) -> Tracking | None:
        """The figures of the challenger held now (new figures for a new challenger)."""
        held, tracking = self.challenger.held, self._tracking
        if held is None:
            if tracking is not None:  # dropped: its version no longer shows as challenger
                self._tracking = None
                model = tracking.challenger.model
                role_metrics.CHALLENGER_INFO.labels(model.snapshot, model.version).set(0)
                role_metrics.GUARD_TRIPPED.set(0)
            return None
        if tracking is None or tracking.challenger is not held:
            tracking = self._track(held)
            self._follow_overruns(tracking)  # a replacement worker learns of them at once
        return tracking

    def _track(self, held: Challenger) -> Tracking:
        old, tracking = self._tracking, Tracking(held, ComparisonLog(self.settings.window),
                                                 CanaryGuard(self.settings, held.model.snapshot))
        self._tracking = tracking
        if old is not None:
            role_metrics.CHALLENGER_INFO.labels(old.challenger.model.snapshot,
                                                old.challenger.model.version).set(0)
        role_metrics.CHALLENGER_INFO.labels(held.model.snapshot, held.model.version).set(1)
        role_metrics.GUARD_TRIPPED.set(0)
        return tracking

    def mode(self, tracking: Tracking | None) -> str:
        """none, shadow, canary, or canary-stopped (the guard tripped)."""
        if tracking is None:
            return "none"
        if self.settings.canary_percent <= 0:
            return "shadow"
        return "canary-stopped" if tracking.guard.trip is not None else "canary"

    def predict(self, given: ModelInput, client_key: Callable[[], str]) -> Answer:
        """The challenger's answer for a canary client, else (or if it fails) the champion's."""
        # client_key names the client: called only while a canary runs.
        champion = self.champion.require()
        tracking = self.tracking()
        if self.mode(tracking) == "canary" and in_canary(client_key(),
                                                          self.settings.canary_percent):
            answer = self._canary(tracking, given)
            if answer is not None:
                return answer
        started = time.perf_counter()
        try:
            predicted = deadline.bounded(self._config.predict_timeout, deadline.CHAMPION,
                                         lambda: champion.predictor.predict(given.matrix))
        except PredictionTimeout as exc:
            champion_metrics.failed(champion)
            self._overran(Role.CHAMPION, champion, exc)
            raise
        except Exception:  # the client gets 500; the promotion guard counts it
            champion_metrics.failed(champion)
            raise
        champion_metrics.answered(champion, time.perf_counter() - started, predicted.labels,
                                  predicted.values)
        role_metrics.ANSWERS.labels(Role.CHAMPION.value, champion.version).inc()
        return Answer(Role.CHAMPION, champion, predicted)

    def _canary(self, tracking: Tracking, given: ModelInput) -> Answer | None:
        model = tracking.challenger.model
        try:
            matrix = given.for_model(model)
        except InvalidInput:  # the challenger's schema refuses this input: not a failure of it
            return None
        started = time.perf_counter()
        try:
            answered = deadline.bounded(self._config.predict_timeout, deadline.CHALLENGER,
                                        lambda: model.predictor.predict(matrix))
            # As in the shadow: a client gets plain lists of finite numbers, one per row.
            predicted = checked(answered, len(matrix), model.schema.task)
        except PredictionTimeout as exc:  # the guard stops the canary for every worker
            tracking.guard.record(Sample(time.perf_counter() - started, failed=True))
            self._overran(Role.CHALLENGER, model, exc)
            tracking.guard.stop(str(exc))
            return None
        except Exception as exc:  # the champion answers instead; the guard counts it
            tracking.guard.record(Sample(time.perf_counter() - started, failed=True))
            role_metrics.CANARY_FAILED.labels(model.version).inc()
            log.warning("canary_failed", version=model.version, error_type=type(exc).__name__)
            return None
        seconds = time.perf_counter() - started
        tracking.guard.record(Sample(seconds))
        role_metrics.CHALLENGER_LATENCY.labels("canary").observe(seconds)
        role_metrics.ANSWERS.labels(Role.CHALLENGER.value, model.version).inc()
        return Answer(Role.CHALLENGER, model, predicted)

    def _overran(self, role: Role, model: ServedModel, exc: PredictionTimeout) -> None:
        """Count, log and remember (for every worker, past this one's life) an overrun."""
        role_metrics.OVERRUNS.labels(role.value, model.version).inc()
        log.warning("prediction_overran", role=role.value, version=model.version,
                    snapshot=model.snapshot, seconds=exc.seconds)
        overruns.record(self._config.validation_dir, overruns.Overrun(
            role.value, model.snapshot, str(exc), time.time()))
        if role is Role.CHAMPION:
            role_metrics.CHAMPION_OVERRAN.set(1)

    def champion_overrun(self) -> overruns.Overrun | None:
        """The served champion's overrun record (any worker's, or the master's), or None."""
        live = self.champion.live
        if live is None:
            return None
        return overruns.find(self._config.validation_dir, Role.CHAMPION.value, live.snapshot)

    def _follow_overruns(self, tracking: Tracking | None) -> None:
        """Trip the guard on the challenger's overrun record; flag the champion's."""
        role_metrics.CHAMPION_OVERRAN.set(1 if self.champion_overrun() else 0)
        if tracking is None or tracking.guard.trip is not None:
            return
        found = overruns.find(self._config.validation_dir, Role.CHALLENGER.value,
                              tracking.challenger.model.snapshot)
        if found is not None:
            tracking.guard.stop(found.reason)

    def shadow(self, answer: Answer, given: ModelInput) -> None:
        """Give a champion answer's input to the challenger (call once the answer is sent)."""
        tracking = self.tracking()
        if answer.role is not Role.CHAMPION or tracking is None:
            return
        model = tracking.challenger.model
        try:
            # Encoded now (the same matrix unless the schemas differ): a queued input keeps
            # its rows, never the request's body.
            matrix = given.for_model(model)
        except InvalidInput:  # the challenger's schema refuses it: not its failure (as canary)
            return
        self.scorer.submit(ShadowInput(model, tracking.comparisons, matrix, answer.predictions))

    def all_workers(self, version: str) -> role_metrics.ShadowTotals:
        """The shadow totals of a version over every worker (reused for a second)."""
        cached = self._totals
        if cached is not None and cached[1] == version and time.monotonic() - cached[0] < \
                TOTALS_TTL:
            return cached[2]
        totals = role_metrics.totals(self._config.metrics_dir, version)
        self._totals = (time.monotonic(), version, totals)
        return totals

    def start(self) -> None:
        """Follow `current` then `candidate` from one thread of this process (fork-aware)."""
        if self._watching.ensure_running() and self.verdict is not None:
            self.verdict.start()

    def stop(self) -> None:
        """Stop the watcher (and the verdict's sender) and wait for the watcher."""
        self._stop.set()
        if self.verdict is not None:
            self.verdict.stop()
        self._watching.join(timeout=10)

    def converge(self, wait: float = 0.0) -> None:
        """One step of the watcher: the champion first (it may adopt), then the challenger.

        `wait`: seconds the champion may wait for the validator's verdict (at a worker's start).
        """
        with contextlib.suppress(ModelRejected):  # refused, logged and remembered by the holder
            self.champion.converge(wait=wait)
        with contextlib.suppress(ModelRejected):
            self.challenger.converge()
        self._follow_overruns(self.tracking())

    def _watch(self) -> None:
        while not self._stop.wait(self._config.check_interval):
            try:
                self.converge()
            except Exception as exc:  # the watcher is this worker's loop: it must not die
                log.error("role_watch_failed", error_type=type(exc).__name__, error=str(exc))
