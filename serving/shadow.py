"""Shadow scoring: the challenger scores the champion's inputs on a thread of its own.

`submit` never blocks: a full queue drops the input and counts it. The one scoring thread per
worker catches whatever the challenger raises (it is untrusted code on untrusted input) and
records it as a failed sample, so a challenger that raises or sleeps costs only its own figures.
What queued while it was busy is scored in one call (the per-call overhead is most of what one
row costs), on a thread the OS runs at a lower priority than the ones answering requests.
"""

from __future__ import annotations

import contextlib
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
from .background import ProcessThread
from .comparison import ComparisonLog, Sample, probability_gap
from .loader import ServedModel
from .schema import Schema

log = logs.get(__name__)
BATCH_MOST = 16  # queued inputs scored in one challenger call (a short hold of the GIL)
SCORER_NICE = 10  # the scoring thread's nice value: requests first
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
        self._scoring = ProcessThread("shadow-scorer", self._run, prepare=self._empty_queue)
        self.dropped = 0

    def submit(self, item: ShadowInput) -> bool:
        """Queue an input for the challenger; False (dropped, counted) when the queue is full."""
        self._scoring.ensure_running()
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

    def _empty_queue(self) -> None:
        """Before the scoring thread starts in this process (after a fork, a new one)."""
        self._queue = queue.Queue(maxsize=self._queue.maxsize)  # a parent's items stay

    def _run(self) -> None:
        _lower_this_threads_priority()
        while True:
            items = [self._queue.get()]
            while len(items) < BATCH_MOST:  # what queued meanwhile: one challenger call
                try:
                    items.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            try:
                score_all(items)
            except Exception as exc:  # this thread is the challenger's loop: it must not die
                log.error("shadow_scoring_failed", error_type=type(exc).__name__, error=str(exc))


def _lower_this_threads_priority() -> None:
    """Let the OS prefer request threads over this one (Linux: a thread id is a task)."""
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), SCORER_NICE)


def score_all(items: list[ShadowInput], clock: Any = time.perf_counter) -> list[Sample]:
    """Score queued inputs, one challenger call per run of inputs for the same challenger."""
    samples: list[Sample] = []
    start = 0
    for end in range(1, len(items) + 1):
        if end == len(items) or items[end].challenger is not items[start].challenger:
            samples += _score_group(items[start:end], clock)
            start = end
    return samples


def _score_group(group: list[ShadowInput], clock: Any) -> list[Sample]:
    """Inputs of one challenger in one call; the time is shared out evenly among them."""
    model = group[0].challenger
    _yield_to_requests()
    started = clock()
    matrices: list[np.ndarray] = []
    try:
        matrices = [item.given.for_model(model) for item in group]
        labels, probabilities = model.predictor.predict(np.concatenate(matrices))
        if len(labels) != sum(len(m) for m in matrices):
            raise ValueError(f"{len(labels)} answers to {sum(len(m) for m in matrices)} rows")
    except Exception as exc:  # the challenger's failure is a figure, never the caller's error
        _log_failing(model, exc)
        each = (clock() - started) / len(group)
        return [_record(item, Sample(each, failed=True)) for item in group]
    each, offset, samples = (clock() - started) / len(group), 0, []
    for item, matrix in zip(group, matrices, strict=True):
        _yield_to_requests()
        rows = slice(offset, offset + len(matrix))
        offset += len(matrix)
        samples.append(_record(item, _compared(item, labels[rows], probabilities[rows], each)))
    return samples


def _yield_to_requests() -> None:
    """Release the GIL now: a request waiting for it would otherwise wait for the switch
    interval (5 ms) while this thread does Python work."""
    time.sleep(0)


def _record(item: ShadowInput, sample: Sample) -> Sample:
    if sample.failed:
        role_metrics.SHADOW_SCORED.labels(item.challenger.version, "failed").inc()
    item.comparisons.add(sample)
    role_metrics.CHALLENGER_LATENCY.labels("shadow").observe(sample.seconds)
    return sample


def _log_failing(model: ServedModel, exc: Exception) -> None:
    """Once per challenger: the counter says how often."""
    if model.snapshot not in _FAILING:
        _FAILING.add(model.snapshot)
        log.warning("shadow_failing", version=model.version, snapshot=model.snapshot,
                    error_type=type(exc).__name__, error=str(exc)[:200])


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
