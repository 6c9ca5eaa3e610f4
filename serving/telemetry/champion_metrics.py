"""The champion's own figures per snapshot: what the promotion guard compares after a swap.

Counted around the champion's model call only (never queueing, parsing or the challenger), by
snapshot and by version set (a digest of its model versions, the same in every replica, where
snapshot ids differ), so that the sidecar's guard (registry_sync.guard), alone or summing a
Deployment's pods in Prometheus, can tell the new champion's failures, latency and answers from
the previous one's. Class names come from the
model's files: only short plain names become a label value, anything else counts as `other`,
and a model with more than MAX_CLASSES classes has its answers counted as `other` too.
A regressor's values are counted as a count, a sum and a sum of squares (mergeable over
workers, pods and windows: the guard derives a window's mean and spread from their differences).
A worker writes its counts to the shared metrics at most every WRITE_EVERY seconds.
"""

from __future__ import annotations

import math
import re
import threading
import time
from bisect import bisect_left
from collections import Counter as Tally
from collections.abc import Collection, Sequence

from prometheus_client import Counter, Histogram, Summary

from model_contract.manifest import version_set

from . import metrics
from .metrics import REGISTRY

MAX_CLASSES = 20
FEW_CLASSES = 4  # up to this many, each class is counted in one C pass (see _tally)
OTHER = "other"
_PLAIN = re.compile(r"[A-Za-z0-9 _.+-]{1,40}")
# Powers of two from 1/16 ms to 8 s: a p95 read from them is within 2x, enough to see a 3x
# slowdown of a model that answers in a tenth of a millisecond.
_BUCKETS = tuple(0.0000625 * 2 ** n for n in range(18))
_KEPT_SNAPSHOTS = 8  # label children cached per process (snapshots come and go)
# Counts are kept in the worker and written to the shared metric files at most this often (a
# write per request cost 18 us of a ~300 us request); /metrics writes them first in its worker.
WRITE_EVERY = 0.25

REQUESTS = Counter("serving_champion_requests",
                   "Requests the champion answered (ok) or failed (its model raised or overran "
                   "PREDICT_TIMEOUT), by snapshot and version set",
                   ["snapshot", "version_set", "outcome"], registry=REGISTRY)
MODEL_SECONDS = Histogram("serving_champion_model_seconds",
                          "Time the champion's model call took per request, by snapshot and "
                          "version set", ["snapshot", "version_set"], buckets=_BUCKETS,
                          registry=REGISTRY)
ANSWERS = Counter("serving_champion_answers",
                  "Rows the champion answered, by snapshot, version set and predicted class",
                  ["snapshot", "version_set", "label"], registry=REGISTRY)

VALUES = Summary("serving_champion_values",
                 "Values the champion answered (a regressor's rows): their count and sum, by "
                 "snapshot and version set", ["snapshot", "version_set"], registry=REGISTRY)
VALUE_SQUARES = Counter("serving_champion_value_squares",
                        "Sum of the squares of the values the champion answered, by snapshot "
                        "and version set", ["snapshot", "version_set"], registry=REGISTRY)


class _Pending:
    """One snapshot's counts not yet written to the metrics, and the children to write to."""

    def __init__(self, snapshot: str, versions: dict[str, str], classes: tuple[str, ...]):
        labels = (snapshot, version_set(versions))
        self.children = (REQUESTS.labels(*labels, "ok"), REQUESTS.labels(*labels, "failed"),
                         MODEL_SECONDS.labels(*labels))
        counted = len(classes) <= MAX_CLASSES
        names = {c: c if counted and _PLAIN.fullmatch(c) else OTHER for c in classes}
        self.answer_children = {c: ANSWERS.labels(*labels, n) for c, n in names.items()}
        self._labels = labels
        self._values = (VALUES.labels(*labels), VALUE_SQUARES.labels(*labels))
        self._other = None  # made on the first label outside the model's classes
        self.ok = self.failed = 0
        self.seconds = 0.0
        self.buckets = [0] * (len(_BUCKETS) + 1)
        self.classes: Tally[str] = Tally()
        self.values = [0, 0.0, 0.0]  # count, sum, sum of squares

    def write(self) -> None:
        """Add the pending counts to the metrics (multiprocess files) and start again."""
        ok, failed, histogram = self.children
        if self.ok:
            ok.inc(self.ok)
            # Histogram.observe() per request costs two file writes; this adds the same counts
            # to the same values at once (prometheus_client's _sum and _buckets, pinned 0.26).
            histogram._sum.inc(self.seconds)
            for index, count in enumerate(self.buckets):
                if count:
                    histogram._buckets[index].inc(count)
        if self.failed:
            failed.inc(self.failed)
        for name, count in self.classes.items():
            child = self.answer_children.get(name)
            if child is None:  # a label outside the model's classes: one child for all
                child = self._other = self._other or ANSWERS.labels(*self._labels, OTHER)
            child.inc(count)
        if self.values[0]:
            values, squares = self._values
            # Summary.observe() per row would cost two file writes; a sum may be negative,
            # which Counter.inc refuses (prometheus_client's _count and _sum, pinned 0.26).
            values._count.inc(self.values[0])
            values._sum.inc(self.values[1])
            squares.inc(self.values[2])
        self.values = [0, 0.0, 0.0]
        self.ok = self.failed = 0
        self.seconds = 0.0
        self.buckets = [0] * (len(_BUCKETS) + 1)
        self.classes = Tally()


_pending: dict[str, _Pending] = {}
_lock = threading.Lock()
_written = [0.0]  # monotonic time of the last write


def _of(model) -> _Pending:
    pending = _pending.get(model.snapshot)
    if pending is None:
        if len(_pending) >= _KEPT_SNAPSHOTS:  # (the lock is held)
            for old in _pending.values():
                old.write()
            _pending.clear()
        pending = _pending[model.snapshot] = _Pending(
            model.snapshot, dict(model.versions), tuple(model.schema.classes))
    return pending


def answered(model, seconds: float, labels: Sequence[str], values: Sequence[float] = ()
             ) -> None:
    """Count one request the champion answered: its model time, each row's class or value."""
    with _lock:
        pending = _of(model)
        pending.ok += 1
        pending.seconds += seconds
        pending.buckets[bisect_left(_BUCKETS, seconds)] += 1
        if len(labels) == 1:
            pending.classes[labels[0]] += 1
        elif labels:
            _tally(pending.classes, labels, pending.answer_children)
        if values:
            pending.values[0] += len(values)
            pending.values[1] += math.fsum(values)
            pending.values[2] += math.fsum(v * v for v in values)
    _write_if_due()


def _tally(tally: Tally[str], labels: Sequence[str], classes: Collection[str]) -> None:
    """Count each row's label: one C pass per class for a model of few classes (list.count;
    8 us for 1,000 rows of two classes, where Counter's walk takes 30), Counter's walk when
    there are more classes or a label is none of them."""
    counts = {c: labels.count(c) for c in classes} \
        if type(labels) is list and len(classes) <= FEW_CLASSES else None
    if counts is None or sum(counts.values()) != len(labels):
        tally.update(labels)
        return
    for name, count in counts.items():
        if count:
            tally[name] += count


def failed(model) -> None:
    """Count one request the champion's model failed (raised, or overran its deadline)."""
    with _lock:
        _of(model).failed += 1
    _write_if_due()


def killed(snapshot: str, versions: dict[str, str]) -> None:
    """Count, in the front's master, one request whose champion call could not be stopped and
    whose worker it killed: the worker's own count died with it, and the guard must see it."""
    REQUESTS.labels(snapshot, version_set(versions), "failed").inc()


def _write_if_due() -> None:
    if time.monotonic() - _written[0] >= WRITE_EVERY:
        flush()


def flush() -> None:
    """Write every pending count now (also before this worker renders /metrics)."""
    with _lock:
        _written[0] = time.monotonic()
        for pending in _pending.values():
            pending.write()


metrics.BEFORE_RENDER.append(flush)
