"""A probe beside the load: one request at a time, each on a new connection, every answer timed.

wrk's p99 cannot see a stall that delays a handful of its requests; the probe can: it notes when
each answer arrived, so the longest gap between two answers (and the worst single request) is a
stall's length, whichever worker it hit (a new connection per request reaches either worker).
"""

from __future__ import annotations

import http.client
import itertools
import threading
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class ProbeResult:
    """What the probe saw: answers, failures, the worst request and the longest silence."""

    answers: int
    failed: int
    worst_ms: float
    longest_gap_ms: float


def gaps(started: float, finished: list[float], ended: float) -> float:
    """The longest time without an answer, from the start to the end of the window (ms)."""
    marks = [started, *sorted(finished), ended]
    return max(b - a for a, b in itertools.pairwise(marks)) * 1e3


class Probe:
    """Sends POST path with body until stopped; call `result()` after the `with` block."""

    def __init__(self, url: str, path: str, body: bytes, timeout: float = 30.0):
        host, port = url.removeprefix("http://").split(":")
        self._address, self._path, self._body = (host, int(port)), path, body
        self._timeout = timeout
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._finished: list[float] = []
        self._latencies: list[float] = []
        self._failed = 0
        self._window = (0.0, 0.0)

    def _one(self) -> None:
        started = time.perf_counter()
        connection = http.client.HTTPConnection(*self._address, timeout=self._timeout)
        try:
            connection.request("POST", self._path, self._body,
                               {"Content-Type": "application/json"})
            response = connection.getresponse()
            response.read()
            ok = response.status == 200
        except OSError:
            ok = False
        finally:
            connection.close()
        ended = time.perf_counter()
        if ok:
            self._finished.append(ended)
            self._latencies.append(ended - started)
        else:
            self._failed += 1

    def _run(self) -> None:
        while not self._stop.is_set():
            self._one()

    def __enter__(self) -> Probe:
        self._window = (time.perf_counter(), 0.0)
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(self._timeout + 5)
        self._window = (self._window[0], time.perf_counter())

    def result(self) -> ProbeResult:
        """The answers counted, failures, worst latency and longest gap (ms) of the window."""
        started, ended = self._window
        worst = max(self._latencies, default=float("nan")) * 1e3
        return ProbeResult(len(self._finished), self._failed, worst,
                           gaps(started, self._finished, ended))
