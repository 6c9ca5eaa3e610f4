"""Follows the decision on the Lease through a watch, re-listing and reconnecting as needed.

Each change of the annotation is checked before anything acts on it: its seal (decision_seal),
then its shape (decision.parse). `deliver(decision, reason)` gets the decision, or None with the
reason it was refused (or was absent), and the Lease's holder is kept for the peer check. No
error ends the thread: a broken stream, an API server outage, a 410 Gone or an unforeseen bug
only delays the next decision while the caller keeps serving.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from typing import Any

from model_contract import logs

from .decision import DECISION_ANNOTATION, Decision, DecisionError, parse
from .decision_seal import unseal
from .election import LeaseRecord, LeaseUnavailable

log = logs.get(__name__)


class DecisionWatcher:
    """Watches one Lease; hands each new authentic decision (or a refusal) to `deliver`."""

    def __init__(self, lease: Any, deliver: Callable[[Decision | None, str], None],
                 key: Callable[[], bytes], binding: str, watch_timeout: int = 300,
                 retry: float = 2.0, rand: Callable[[], float] = random.random,
                 clock: Callable[[], float] = time.monotonic):
        self.lease, self._deliver, self._key, self._binding = lease, deliver, key, binding
        self._watch_timeout, self._retry, self._rand = watch_timeout, retry, rand
        self._clock = clock
        self._text: str | None = None
        self._watch: Any = None
        self.reconnects = 0
        self.holder = ""  # the Lease's holderIdentity as last seen
        self.alive_at = clock()  # the loop's last sign of life, for /healthz

    def run(self, stop: threading.Event) -> None:
        """List, then watch from the listed version; repeat on any break, until stopped."""
        from .lease_api import WatchExpired

        version = ""
        while not stop.is_set():
            self.alive_at = self._clock()
            try:
                if not version:
                    version = self._list()
                version = self._follow(version, stop)
            except WatchExpired:
                log.info("decision_watch_expired", lease=self.lease.name)
                version = ""
            except LeaseUnavailable as exc:
                self.reconnects += 1
                log.warning("decision_watch_broken", lease=self.lease.name, error=str(exc))
                stop.wait(self._retry * (0.5 + self._rand()))
            except Exception as exc:  # a bug must cost a retry period, never the thread
                log.error("decision_watch_crashed", lease=self.lease.name,
                          error_type=type(exc).__name__, error=str(exc)[:300])
                version = ""
                stop.wait(self._retry * (0.5 + self._rand()))

    def stop(self) -> None:
        """End the current stream now (run() returns once its stop event is set too)."""
        watch = self._watch
        if watch is not None:
            watch.stop()

    def _list(self) -> str:
        record = self.lease.get()
        self._offer(record)
        return record.resource_version if record else "0"

    def _follow(self, version: str, stop: threading.Event) -> str:
        def keep(watch: Any) -> None:
            self._watch = watch

        for kind, record, seen in self.lease.watch(version, self._watch_timeout, keep):
            self.alive_at = self._clock()
            version = seen or version
            if kind in ("ADDED", "MODIFIED"):
                self._offer(record)
            elif kind == "DELETED":
                self._offer(None)
            if stop.is_set():
                break
        return version

    def _offer(self, record: LeaseRecord | None) -> None:
        self.holder = record.holder if record else ""
        text = (record.annotations if record else {}).get(DECISION_ANNOTATION)
        if text == self._text:
            return  # a renewal of the Lease: every retry period, nothing decided
        self._text = text
        if not text:
            self._deliver(None, "no decision on the Lease")
            return
        try:
            found = parse(unseal(text, self._key(), self._binding))
        except DecisionError as exc:
            log.error("decision_refused", lease=self.lease.name, reason=str(exc)[:300],
                      holder=self.holder[:64])
            self._deliver(None, str(exc)[:300])
            return
        self._deliver(found, "")
