"""The champion's own figures per snapshot: what the promotion guard compares after a swap.

Counted around the champion's model call only (never queueing, parsing or the challenger), by
snapshot and by version set (a digest of its model versions, the same in every replica, where
snapshot ids differ), so that the sidecar's guard (registry_sync.guard), alone or summing a
Deployment's pods in Prometheus, can tell the new champion's failures, latency and answers from
the previous one's. Class names come from the
model's files: only short plain names become a label value, anything else counts as `other`,
and a model with more than MAX_CLASSES classes has its answers counted as `other` too.
"""

from __future__ import annotations

import re
from collections import Counter as Tally

from prometheus_client import Counter, Histogram

from model_contract.manifest import version_set

from .metrics import REGISTRY

MAX_CLASSES = 20
OTHER = "other"
_PLAIN = re.compile(r"[A-Za-z0-9 _.+-]{1,40}")
# Powers of two from 1/16 ms to 8 s: a p95 read from them is within 2x, enough to see a 3x
# slowdown of a model that answers in a tenth of a millisecond.
_BUCKETS = tuple(0.0000625 * 2 ** n for n in range(18))
_KEPT_SNAPSHOTS = 8  # label children cached per process (snapshots come and go)

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


class _Children:
    """The label children of one snapshot, made once (labels() costs a lookup per call)."""

    def __init__(self, snapshot: str, versions: dict[str, str], classes: tuple[str, ...]):
        self._labels = (snapshot, version_set(versions))
        self.ok = REQUESTS.labels(*self._labels, "ok")
        self.failed = REQUESTS.labels(*self._labels, "failed")
        self.seconds = MODEL_SECONDS.labels(*self._labels)
        counted = len(classes) <= MAX_CLASSES
        self.names = {c: c if counted and _PLAIN.fullmatch(c) else OTHER for c in classes}
        self._answers: dict[str, object] = {}

    def answer(self, name: str):
        """The counter child of one class (names outside the model's classes: `other`)."""
        child = self._answers.get(name)
        if child is None:
            child = ANSWERS.labels(*self._labels, self.names.get(name, OTHER))
            self._answers[name] = child
        return child


_children: dict[str, _Children] = {}


def _of(model) -> _Children:
    children = _children.get(model.snapshot)
    if children is None:
        if len(_children) >= _KEPT_SNAPSHOTS:
            _children.clear()
        children = _children[model.snapshot] = _Children(
            model.snapshot, dict(model.versions), tuple(model.schema.classes))
    return children


def answered(model, seconds: float, labels: list[str]) -> None:
    """Count one request the champion answered: its model time and each row's class."""
    children = _of(model)
    children.ok.inc()
    children.seconds.observe(seconds)
    if len(labels) == 1:
        children.answer(labels[0]).inc()
        return
    for name, count in Tally(labels).items():
        children.answer(name).inc(count)


def failed(model) -> None:
    """Count one request the champion's model failed (raised, or overran its deadline)."""
    _of(model).failed.inc()
