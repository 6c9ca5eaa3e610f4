"""Shadow scoring: the challenger scores the champion's inputs on a thread of its own.

`submit` never blocks: a full queue drops the input and counts it. The one scoring thread per
worker catches whatever the challenger raises (it is untrusted code on untrusted input) and
records it as a failed sample, so a challenger that raises or sleeps costs only its own figures.
The scorer wakes on the first input, waits GATHER_SECONDS for more, and scores them in one
call: the per-call overhead is most of what one row costs, and each time it takes the GIL from
the request thread (every 5 ms at most, the switch interval) a request waits for it, so it takes
it about once per batch, briefly. It runs at a lower OS priority than the request thread.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from model_contract import logs
from serving.inputs.schema import Schema
from serving.model.loader import ServedModel
from serving.model.predictions import Predictions, Task, checked, relative_difference
from serving.swap.background import ProcessThread

from . import role_metrics
from .comparison import ComparisonLog, Sample, probability_gap
from .shadow_process import ShadowProcess

log = logs.get(__name__)
BATCH_MOST = 64  # queued inputs scored in one challenger call
# After the first input arrives, the scorer waits this long for more: one challenger call and
# one hand-over of the GIL per batch, not per input (each hand-over delays a request).
GATHER_SECONDS = 0.01
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
    matrix: np.ndarray  # encoded for the challenger's schema
    champion: Predictions  # the champion's answer to it


Predict = Callable[[ServedModel, np.ndarray], Any]


def in_this_process(model: ServedModel, matrix: np.ndarray) -> Any:
    """The challenger's call on the scoring thread (it shares the worker's GIL)."""
    return model.predictor.predict(matrix)


class ShadowScorer:
    """A bounded queue of inputs and the thread that scores them with the challenger."""

    def __init__(self, size: int, deadline: float | None = None):
        """`deadline`: score in a process of its own, each call bounded by it (None: in a
        thread of this process, unbounded)."""
        self._size, self._deadline = size, deadline
        self._process: ShadowProcess | None = None
        self._items: deque[ShadowInput] = deque()
        self._arrived = threading.Event()
        self._scoring = ProcessThread("shadow-scorer", self._run, prepare=self._empty_queue)
        self.dropped = 0

    def submit(self, item: ShadowInput) -> bool:
        """Queue an input for the challenger; False (dropped, counted) when the queue is full."""
        self._scoring.ensure_running()
        # No lock: two request threads (gunicorn's threads) could each add one past the limit.
        if len(self._items) >= self._size:
            self.dropped += 1
            role_metrics.SHADOW_DROPPED.labels(item.challenger.version).inc()
            return False
        self._items.append(item)
        if not self._arrived.is_set():  # wake the scorer once per batch, not once per input
            self._arrived.set()
        return True

    def pending(self) -> int:
        """Inputs waiting for the challenger."""
        return len(self._items)

    def _empty_queue(self) -> None:
        """Before the scoring thread starts: in a forked child, empty (a parent's items stay
        with it); restarted in the same process, what is queued is kept."""
        if not self._scoring.started_here():
            self._items, self._arrived = deque(), threading.Event()
            # A parent's child is not this process's: fork our own on first use.
            self._process = ShadowProcess(self._deadline) if self._deadline else None

    def _run(self) -> None:
        _lower_this_threads_priority()
        while True:
            if not self._items:
                self._arrived.wait()
            if len(self._items) < BATCH_MOST:  # else a short batch would follow each full one
                time.sleep(GATHER_SECONDS)
            self._arrived.clear()  # before taking: an input added after it sets it again
            items = []
            while self._items and len(items) < BATCH_MOST:
                items.append(self._items.popleft())
            process = self._process
            try:
                score_all(items, process.predict if process is not None else in_this_process)
            except BaseException as exc:  # the challenger's loop: it must not die (SystemExit)
                log.error("shadow_scoring_failed", error_type=type(exc).__name__, error=str(exc))


def _lower_this_threads_priority() -> None:
    """Let the OS prefer request threads over this one (Linux: a thread id is a task)."""
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), SCORER_NICE)


def score_all(items: list[ShadowInput], predict: Predict = in_this_process) -> None:
    """Score queued inputs, one challenger call per run of inputs for the same challenger."""
    start = 0
    for end in range(1, len(items) + 1):
        if end == len(items) or items[end].challenger is not items[start].challenger:
            if start > 0:
                _yield_to_requests()  # between calls (the thread has just waited before the first)
            _score_group(items[start:end], predict)
            start = end


def _score_group(group: list[ShadowInput], predict: Predict) -> None:
    """Inputs of one challenger in one call; the time is shared out evenly among them."""
    model = group[0].challenger
    started = time.perf_counter()
    try:
        matrices = [item.matrix for item in group]
        answer = checked(predict(model, np.concatenate(matrices)), sum(len(m) for m in matrices),
                         model.schema.task)
        each = (time.perf_counter() - started) / len(group)
        compared = _compared(group, matrices, answer, each)
    except BaseException as exc:  # the challenger's failure is a figure, never its caller's
        _log_failing(model, exc)
        each = (time.perf_counter() - started) / len(group)
        failed_rows = sum(item.champion.rows for item in group)  # the champion answered each
        role_metrics.SHADOW_SCORED.labels(model.version, "failed").inc(failed_rows)
        _record(group, [Sample(each, failed=True)] * len(group))
        return
    _count(model, answer.task, compared)
    _record(group, compared.samples)


def _count(model: ServedModel, task: Task, compared: _Compared) -> None:
    """The rows' figures in the all-workers counters."""
    if task is Task.REGRESSION:
        role_metrics.SHADOW_SCORED.labels(model.version, "compared").inc(compared.rows)
        role_metrics.SHADOW_DIFF.labels(model.version).inc(compared.gap)
        role_metrics.SHADOW_RELATIVE.labels(model.version).inc(compared.relative)
        return
    role_metrics.SHADOW_SCORED.labels(model.version, "agreed").inc(compared.agreed)
    role_metrics.SHADOW_SCORED.labels(model.version, "disagreed").inc(
        compared.rows - compared.agreed)
    role_metrics.SHADOW_GAP.labels(model.version).inc(compared.gap)


def _yield_to_requests() -> None:
    """Release the GIL now: a request waiting for it would otherwise wait for the switch
    interval (5 ms) while this thread does Python work."""
    time.sleep(0)


def _record(group: list[ShadowInput], samples: list[Sample]) -> None:
    """Each input's sample in its challenger's log; the call's time per input in the histogram.

    One observation per challenger call: its inputs share one time, and an observation costs
    what comparing an input does (serving_shadow_scored_total counts the rows).
    """
    logs_of: dict[int, tuple[ComparisonLog, list[Sample]]] = {}
    for item, sample in zip(group, samples, strict=True):
        logs_of.setdefault(id(item.comparisons), (item.comparisons, []))[1].append(sample)
    for comparisons, added in logs_of.values():
        comparisons.add_all(added)  # one lock per log, not one per input
    role_metrics.CHALLENGER_LATENCY.labels("shadow").observe(samples[0].seconds)


def _log_failing(model: ServedModel, exc: Exception) -> None:
    """Once per challenger: the counter says how often."""
    if model.snapshot not in _FAILING:
        _FAILING.add(model.snapshot)
        log.warning("shadow_failing", version=model.version, snapshot=model.snapshot,
                    error_type=type(exc).__name__, error=str(exc)[:200])


class _Compared(NamedTuple):
    """A group's samples (one per input), and its rows' figures for the counters (a
    regressor's gap is the sum of |value differences|, relative their relative sum)."""

    samples: list[Sample]
    agreed: int
    rows: int
    gap: float
    relative: float = 0.0


def _compared(group: list[ShadowInput], matrices: list[np.ndarray], answer: Predictions,
              seconds: float) -> _Compared:
    """Each input's agreement and mean gap over its rows, and the rows' totals."""
    if any(item.champion.task is not answer.task for item in group):
        raise ValueError(f"a {answer.task.value} challenger cannot be compared with a "
                         "champion of another task")
    if answer.task is Task.REGRESSION:
        return _compared_values(group, matrices, answer.values, seconds)
    classes = len(group[0].challenger.schema.classes)
    labels, probabilities = answer.labels, answer.probabilities
    of_label = _of_label(answer) if classes > 2 else None
    samples, agreed, gap, offset = [], 0, 0.0, 0
    for item, matrix in zip(group, matrices, strict=True):
        rows = len(matrix)
        answered = zip(labels[offset:offset + rows], probabilities[offset:offset + rows],
                       strict=True)
        item_agreed, item_gap = 0, 0.0
        champion = item.champion
        for row, (mine, theirs) in enumerate(zip(
                zip(champion.labels, champion.probabilities, strict=True), answered,
                strict=True), offset):
            item_agreed += mine[0] == theirs[0]
            item_gap += probability_gap(mine, theirs, classes,
                                        of_label(row, mine[0]) if of_label else None)
        offset += rows
        samples.append(Sample(seconds, agreed=item_agreed == rows, gap=item_gap / rows))
        agreed, gap = agreed + item_agreed, gap + item_gap
    return _Compared(samples, agreed, offset, gap)


def _of_label(answer: Predictions) -> Callable[[int, str], float] | None:
    """(row, label) -> the challenger's probability of that label (0 for a class it does not
    know), from its per-class probabilities; None if it did not give them."""
    table = answer.class_probabilities
    if table is None:
        return None
    column = {str(c): i for i, c in enumerate(answer.classes)}

    def of_label(row: int, label: str) -> float:
        index = column.get(label)
        return 0.0 if index is None else float(table[row][index])

    return of_label


def _compared_values(group: list[ShadowInput], matrices: list[np.ndarray],
                     values: Sequence[float], seconds: float) -> _Compared:
    """Each input's mean absolute and relative difference over its rows, and the totals."""
    samples, gap, relative, offset = [], 0.0, 0.0, 0
    for item, matrix in zip(group, matrices, strict=True):
        rows = len(matrix)
        pairs = list(zip(item.champion.values, values[offset:offset + rows], strict=True))
        offset += rows
        item_gap = sum(abs(mine - theirs) for mine, theirs in pairs)
        item_relative = sum(relative_difference(mine, theirs) for mine, theirs in pairs)
        samples.append(Sample(seconds, gap=item_gap / rows, relative=item_relative / rows))
        gap, relative = gap + item_gap, relative + item_relative
    return _Compared(samples, 0, offset, gap, relative)
