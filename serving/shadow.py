"""Shadow scoring: the challenger scores the champion's inputs on a thread of its own.

`submit` never blocks: a full queue drops the input and counts it. The one scoring thread per
worker catches whatever the challenger raises (it is untrusted code on untrusted input) and
records it as a failed sample, so a challenger that raises or sleeps costs only its own figures.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from model_contract import logs

from . import role_metrics
from .comparison import ComparisonLog, Sample, probability_gap
from .loader import ServedModel
from .schema import Schema

log = logs.get(__name__)
_FAILING: set[str] = set()  # challenger snapshots whose failure was logged


@dataclass(frozen=True)
class ModelInput:
    """A validated input: its matrix for the champion's schema, and how to encode it for another.

    Two snapshots may encode an input differently (category codes, columns): a model whose
    schema differs from the champion's gets the input parsed again for its own schema.
    """

    matrix: np.ndarray
    schema: Schema
    reparse: Callable[[Schema], np.ndarray]

    def for_model(self, model: ServedModel) -> np.ndarray:
        """The matrix for this model (InvalidInput if the input does not fit its schema)."""
        if model.schema is self.schema or model.schema == self.schema:
            return self.matrix
        return self.reparse(model.schema)


@dataclass(frozen=True)
class ShadowInput:
    """One validated input and the champion's answer to it, for the challenger to score."""

    challenger: ServedModel
    comparisons: ComparisonLog
    given: ModelInput
    labels: list[str]
    probabilities: list[float]


class ShadowScorer:
    """A bounded queue of inputs and the thread that scores them with the challenger."""

    def __init__(self, size: int):
        self._queue: queue.Queue[ShadowInput] = queue.Queue(maxsize=size)
        self._thread: threading.Thread | None = None
        self._pid: int | None = None
        self._lock = threading.Lock()
        self.dropped = 0

    def submit(self, item: ShadowInput) -> bool:
        """Queue an input for the challenger; False (dropped, counted) when the queue is full."""
        self._ensure_thread()
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            self.dropped += 1
            role_metrics.SHADOW_DROPPED.inc()
            return False
        return True

    def pending(self) -> int:
        """Inputs waiting for the challenger."""
        return self._queue.qsize()

    def _ensure_thread(self) -> None:
        """Start the scoring thread in this process (after a fork, a new one)."""
        thread = self._thread
        if thread is not None and thread.is_alive() and self._pid == os.getpid():
            return
        with self._lock:
            if self._thread is not None and self._thread.is_alive() and \
                    self._pid == os.getpid():
                return
            self._queue = queue.Queue(maxsize=self._queue.maxsize)  # a parent's items stay
            self._pid = os.getpid()
            self._thread = threading.Thread(target=self._run, name="shadow-scorer", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            try:
                score(item)
            except Exception as exc:  # this thread is the challenger's loop: it must not die
                log.error("shadow_scoring_failed", error_type=type(exc).__name__, error=str(exc))


def score(item: ShadowInput, clock: Any = time.perf_counter) -> Sample:
    """Score one input with the challenger and record how it compares with the champion."""
    model = item.challenger
    started = clock()
    try:
        labels, probabilities = model.predictor.predict(item.given.for_model(model))
        if len(labels) != len(item.labels):
            raise ValueError(f"{len(labels)} answers to {len(item.labels)} rows")
    except Exception as exc:  # the challenger's failure is a figure, never the caller's error
        sample = Sample(clock() - started, failed=True)
        role_metrics.SHADOW_SCORED.labels(model.version, "failed").inc()
        if model.snapshot not in _FAILING:  # once per challenger: the counter says how often
            _FAILING.add(model.snapshot)
            log.warning("shadow_failing", version=model.version, snapshot=model.snapshot,
                        error_type=type(exc).__name__, error=str(exc)[:200])
    else:
        sample = _compared(item, labels, probabilities, clock() - started)
    item.comparisons.add(sample)
    role_metrics.CHALLENGER_LATENCY.labels("shadow").observe(sample.seconds)
    return sample


def _compared(item: ShadowInput, labels: list[str], probabilities: list[float],
              seconds: float) -> Sample:
    """One sample per request: agreement and gap averaged over its rows."""
    classes = len(item.challenger.schema.classes)
    champion = zip(item.labels, item.probabilities, strict=True)
    pairs = list(zip(champion, zip(labels, probabilities, strict=True), strict=True))
    agreed = sum(a[0] == b[0] for a, b in pairs)
    gap = sum(probability_gap(a, b, classes) for a, b in pairs)
    version = item.challenger.version
    role_metrics.SHADOW_SCORED.labels(version, "agreed").inc(agreed)
    role_metrics.SHADOW_SCORED.labels(version, "disagreed").inc(len(pairs) - agreed)
    role_metrics.SHADOW_GAP.labels(version).inc(gap)
    return Sample(seconds, agreed=agreed == len(pairs), gap=gap / len(pairs))
