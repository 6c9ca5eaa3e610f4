"""Prediction events to Comet Model Production Monitoring, never on the request's time.

The request path calls `Monitor.record`: a sampling draw, then a put on a bounded queue that
never blocks; a full queue drops the request's events and counts them. One background thread per
process (started on first use, and again after a fork: serving.swap.background) hands the events to
Comet's own `comet_mpm` SDK. The SDK fixes the model version per `CometMPM` instance, so when the
served version changes, the old instance is ended (drained) on a thread of its own and a new one
opened. The SDK's own queue is unbounded: the sender waits while it holds MPM_QUEUE_SIZE events,
so that ours fills and drops instead of memory growing while Comet is slow or down. What is
needed of the SDK itself is in mpm_sdk.

Labels (POST /api/v1/labels, already checked against the signed prediction id) wait on a queue of
their own (LABELS_QUEUE_SIZE): the sender takes one at most every LABEL_TURN items while
prediction events wait, so labels never starve events. A label for a version other than the
served one uses one of at most LABEL_CLIENTS other SDK instances (least recently used ended).
"""

from __future__ import annotations

import queue
import random
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from flask import current_app

from model_contract import layout, logs, manifest
from serving.config import MpmConfig
from serving.model.predictions import Predictions
from serving.swap.background import ProcessThread

from . import metrics, mpm_sdk
from .mpm_sdk import ModelKey
from .prediction_ids import PredictionIds, key_from

log = logs.get(__name__)
MONITOR = "serving.monitor"
UNAVAILABLE_PAUSE = 5.0  # after a failed ping, events are dropped this long before a new try
ROOM_POLL = 0.05
IDLE_POLL = 0.25  # seconds the sender waits for an event before it looks at the labels again
LABEL_TURN = 4  # while events wait, one turn in this many goes to a label
LABEL_CLIENTS = 2  # SDK instances kept for labels of versions no longer served
_STOP = object()


def monitor() -> Monitor:
    """The MPM sender of the current app."""
    return current_app.extensions[MONITOR]


@dataclass(frozen=True)
class PredictionEvents:
    """The predictions of one request; a batch's ids are `<prediction_id>-<index>`."""

    prediction_id: str
    snapshot: str
    model: str
    version: str
    instances: Sequence[Any] | Callable[[], Sequence[Any]]  # a callable: parsed when sent
    answers: Predictions
    batch: bool
    features: Sequence[str]

    @property
    def count(self) -> int:
        """How many events this is."""
        return self.answers.rows

    def events(self) -> Iterator[tuple[str, dict[str, Any], dict[str, Any]]]:
        """(prediction id, input features, output features in the SDK's keys) of each row:
        {"value", "probability"} for a class, {"value"} for a regressor's number."""
        instances = self.instances() if callable(self.instances) else self.instances
        for i, instance in enumerate(instances):
            pid = f"{self.prediction_id}-{i}" if self.batch else self.prediction_id
            yield pid, {name: instance.get(name) for name in self.features}, \
                self.answers.output(i)


@dataclass(frozen=True)
class GroundTruth:
    """The true label of an earlier prediction, for the model version that made it."""

    prediction_id: str
    label: str | float  # a regressor's true value is a number
    snapshot: str
    model: str
    version: str
    count: int = 1


class Monitor:
    """This process's MPM sender: sample, queue (bounded), send from a background thread."""

    def __init__(self, config: MpmConfig, model_root: Path,
                 open_client: Callable[[ModelKey], Any] | None = None,
                 draw: Callable[[], float] = random.random, ids: PredictionIds | None = None):
        self.config, self._root, self._draw = config, model_root, draw
        self.ids = ids or PredictionIds(key_from(None), config.labels_max_age)
        self._open = open_client or partial(mpm_sdk.open_client, config)
        self._queue: queue.Queue | None = None
        self._labels: queue.Queue | None = None
        self._others: OrderedDict[ModelKey, Any] = OrderedDict()  # label-only SDK instances
        self._sender = ProcessThread("mpm-sender", self._run, prepare=self._fresh)
        self._client: Any = None
        self._client_key: ModelKey | None = None
        self._paused_until = 0.0
        self._workspaces: dict[str, str] = {}

    @property
    def enabled(self) -> bool:
        """Whether events are sent at all (MPM_ENABLED)."""
        return self.config.enabled

    def record(self, model: Any, prediction_id: str,
               instances: Sequence[Any] | Callable[[], Sequence[Any]],
               answers: Predictions, batch: bool) -> None:
        """Offer one request's predictions, if sampled; never blocks, never raises Full."""
        if not self.config.enabled or self._draw() >= self.config.sample_rate:
            return
        self._offer(PredictionEvents(prediction_id, model.snapshot, model.primary,
                                     model.version, instances, answers, batch,
                                     model.schema.names))

    def new_id(self, version: str) -> str:
        """A signed prediction id for an answer of this version (telemetry.prediction_ids)."""
        return self.ids.issue(version)

    def record_label(self, model: Any, prediction_id: str, label: str | float,
                     version: str | None = None) -> bool:
        """Offer a true label; False if the labels queue is full (the label is not taken)."""
        return self._offer(GroundTruth(prediction_id, label, model.snapshot, model.primary,
                                       version or model.version))

    def _offer(self, item: PredictionEvents | GroundTruth) -> bool:
        if not self._sender.started_here():
            self._start()
        work = self._labels if isinstance(item, GroundTruth) else self._queue
        assert work is not None
        try:
            work.put_nowait(item)
        except queue.Full:
            metrics.MPM_DROPPED.labels("queue_full").inc(item.count)
            return False
        return True

    def _start(self) -> queue.Queue:
        """A queue and a sender thread of this process (a forked child starts its own)."""
        self._sender.ensure_running()
        assert self._queue is not None
        return self._queue

    def _fresh(self) -> None:
        """Before the sender starts in this process: an empty queue, no SDK instance."""
        self._queue = queue.Queue(self.config.queue_size)
        self._labels = queue.Queue(self.config.labels_queue_size)
        self._client, self._client_key = None, None
        self._others = OrderedDict()

    def stop(self, timeout: float = 10.0) -> None:
        """Send what is queued, end the SDK instance, stop the sender thread."""
        if not self._sender.started_here() or self._queue is None:
            return
        done = threading.Event()
        try:
            self._queue.put((_STOP, done), timeout=timeout)
        except queue.Full:
            return  # the sender is stuck on Comet: it is a daemon thread, leave it
        done.wait(timeout)

    def _run(self) -> None:
        work, labels = self._queue, self._labels  # this process's queues, made by _fresh
        assert work is not None and labels is not None
        turn = 0
        while True:
            turn += 1
            item = _next(work, labels, label_first=turn % LABEL_TURN == 0)
            if isinstance(item, tuple) and item[0] is _STOP:
                self._retire(wait=True)
                while self._others:
                    _end_in_background(self._others.popitem()[1], self.config.send_timeout)
                item[1].set()
                return
            if item is not None:
                self._deliver_safely(item)
            self._count_send_failures()
            metrics.MPM_QUEUE.set(work.qsize())

    def _deliver_safely(self, item: PredictionEvents | GroundTruth) -> None:
        try:
            self._deliver(item)
        except Exception as exc:  # this thread is the worker's only MPM loop: it must not die
            metrics.MPM_DROPPED.labels("send_failed").inc(item.count)
            log.error("mpm_send_failed", error_type=type(exc).__name__, error=str(exc))

    def _deliver(self, item: PredictionEvents | GroundTruth) -> None:
        key = ModelKey(self._workspace(item.snapshot, item.model), item.model, item.version)
        label = isinstance(item, GroundTruth)
        client = self._label_client(key) if label else self._client_for(key)
        if client is None:
            metrics.MPM_DROPPED.labels("unavailable").inc(item.count)
            return
        self._wait_for_room(client)
        if label:
            client.log_label(item.prediction_id, labels={"value": item.label})
            metrics.MPM_EVENTS.labels("label").inc()
            return
        for pid, features, output in item.events():
            client.log_event(pid, input_features=features, output_features=output)
        metrics.MPM_EVENTS.labels("prediction").inc(item.count)

    def _client_for(self, key: ModelKey) -> Any:
        """The SDK instance of the served version; the old one ended when the version changes."""
        if self._client is not None and self._client_key == key:
            return self._client
        client = self._opened(key)
        if client is not None:
            self._retire(wait=False)
            self._client, self._client_key = client, key
            log.info("mpm_model_opened", workspace=key.workspace, model=key.name,
                     version=key.version)
        return client

    def _label_client(self, key: ModelKey) -> Any:
        """The served version's instance, else one of LABEL_CLIENTS others (LRU)."""
        if self._client is None or self._client_key == key:
            return self._client_for(key)
        if key in self._others:
            self._others.move_to_end(key)
            return self._others[key]
        client = self._opened(key)
        if client is not None:
            self._others[key] = client
            while len(self._others) > LABEL_CLIENTS:
                _end_in_background(self._others.popitem(last=False)[1], self.config.send_timeout)
        return client

    def _opened(self, key: ModelKey) -> Any:
        """A new SDK instance, or None while MPM is paused or does not answer."""
        if time.monotonic() < self._paused_until:
            return None
        client = self._open(key)
        if client is None:
            self._paused_until = time.monotonic() + UNAVAILABLE_PAUSE
        return client

    def _retire(self, wait: bool) -> None:
        """End the current SDK instance: its queued events are sent first."""
        old, self._client, self._client_key = self._client, None, None
        if old is None:
            return
        self._count_send_failures(old)
        ender = _end_in_background(old, self.config.send_timeout)
        if wait:
            ender.join(self.config.send_timeout * 2)

    def _wait_for_room(self, client: Any) -> None:
        while mpm_sdk.backlog(client) >= self.config.queue_size:
            time.sleep(ROOM_POLL)

    def _count_send_failures(self, client: Any = None) -> None:
        client = client or self._client
        if client is None:
            return
        for error in client.get_logging_errors(clear=True):
            lost = error.get("data_affected")
            if lost:
                metrics.MPM_DROPPED.labels("send_failed").inc(len(lost))

    def _workspace(self, snapshot: str, model: str) -> str:
        """The model's workspace as the snapshot's manifest names it, else COMET_WORKSPACE."""
        if snapshot not in self._workspaces:
            found = None
            try:
                entry = manifest.read(layout.snapshot_path(self._root, snapshot)).model(model)
                found = entry.workspace if entry else None
            except (OSError, ValueError, manifest.ManifestError):
                pass  # a pruned snapshot: fall back on the setting
            # One snapshot remembered: the served one.
            self._workspaces = {snapshot: found or self.config.workspace or "default"}
        return self._workspaces[snapshot]


def _next(work: queue.Queue, labels: queue.Queue, label_first: bool) -> Any:
    """The next item to send: prediction events first, a label on its turn or when none waits."""
    if label_first or work.empty():
        try:
            return labels.get_nowait()
        except queue.Empty:
            pass
    try:
        return work.get(timeout=IDLE_POLL)
    except queue.Empty:
        return None


def _end_in_background(client: Any, timeout: int) -> threading.Thread:
    ender = threading.Thread(target=mpm_sdk.end, args=(client, timeout), name="mpm-end",
                             daemon=True)
    ender.start()
    return ender
