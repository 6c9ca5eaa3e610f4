"""The promotion guard: watches a newly published champion and trips when it hurts traffic.

A thread reads serving's /metrics every GUARD_SAMPLE_INTERVAL seconds and keeps the readings of
the last two windows. When the syncer publishes a new snapshot it calls `watch()`: the previous
snapshot's figures over its last GUARD_WINDOW seconds become the baseline, and for GUARD_WINDOW
seconds the new snapshot's figures since publication are judged against it
(registry_sync.guard_figures). A trip is kept for the sync loop (`take()`), which is woken to
roll back: the guard never writes MODEL_ROOT. A sidecar restarted inside a window does not
resume it.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import requests

from model_contract import logs

from .guard_figures import (
    MAX_METRICS_BYTES,
    Check,
    Figures,
    Thresholds,
    judge,
    margins,
    parse,
)

log = logs.get(__name__)
Reading = tuple[float, dict[str, Figures]]  # (monotonic seconds, figures per snapshot)


@dataclass(frozen=True)
class GuardSettings:
    """GUARD_* settings: on or off, the window, the sampling and the thresholds."""

    enabled: bool = False
    window: float = 60.0
    sample_interval: float = 1.0
    thresholds: Thresholds = field(default_factory=Thresholds)
    comet_tag: str = ""  # tag put on a rolled-back version in the registry; empty: none


@dataclass(frozen=True)
class Trip:
    """A watched snapshot that crossed a threshold: what to leave, where to go back, why."""

    snapshot: str
    previous: str | None
    check: Check
    reason: str
    at: float


@dataclass(frozen=True)
class _Watch:
    snapshot: str
    previous: str | None
    since: float
    start: Figures
    baseline: Figures


class PromotionGuard:
    """Reads serving's champion figures and judges each new snapshot for one window."""

    def __init__(self, settings: GuardSettings, metrics_url: str,
                 on_trip: Callable[[], None] = lambda: None,
                 session: requests.Session | None = None,
                 clock: Callable[[], float] = time.monotonic):
        self.settings, self._url, self._on_trip = settings, metrics_url, on_trip
        self._session = session or requests.Session()
        self._clock = clock
        kept = int(2 * settings.window / settings.sample_interval) + 4
        self._readings: deque[Reading] = deque(maxlen=kept)
        self._watch: _Watch | None = None
        self._trip: Trip | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._unreadable = False

    def start(self) -> None:
        """Start reading serving's metrics from a daemon thread."""
        self._thread = threading.Thread(target=self._run, name="promotion-guard", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread and wait for it."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def watch(self, snapshot: str, previous: str | None) -> None:
        """A snapshot was published over `previous`: judge it for one window from now."""
        self.sample()
        with self._lock:
            latest = self._readings[-1][1] if self._readings else {}
            baseline = self._window_of(previous) if previous else Figures()
            self._watch = _Watch(snapshot, previous, self._clock(),
                                 latest.get(snapshot, Figures()), baseline)
            self._trip = None
        log.info("promotion_watched", snapshot=snapshot, previous=previous,
                 window=self.settings.window, baseline_requests=int(baseline.requests),
                 baseline_p95_ms=_ms(baseline.p95()))

    def take(self) -> Trip | None:
        """The trip not yet acted on, once."""
        with self._lock:
            trip, self._trip = self._trip, None
            return trip

    def watching(self) -> str | None:
        """The snapshot under watch now, if any."""
        watch = self._watch
        return watch.snapshot if watch else None

    def _window_of(self, snapshot: str) -> Figures:
        """A snapshot's figures over the last window of readings (lock held)."""
        if not self._readings:
            return Figures()
        now, latest = self._readings[-1]
        first = next((r for t, r in self._readings if t >= now - self.settings.window), latest)
        return latest.get(snapshot, Figures()).since(first.get(snapshot, Figures()))

    def _run(self) -> None:
        while not self._stop.wait(self.settings.sample_interval):
            try:
                self.sample()
                self.judge()
            except Exception as exc:  # the guard's loop: report, never die
                log.error("guard_failed", error_type=type(exc).__name__, error=str(exc),
                          exc_info=exc)

    def sample(self) -> None:
        """Read serving's /metrics once (an unreadable answer is skipped and logged once)."""
        try:
            with self._session.get(self._url, timeout=(2.0, 5.0), stream=True) as response:
                response.raise_for_status()
                body = response.raw.read(MAX_METRICS_BYTES, decode_content=True)
        except requests.RequestException as exc:
            if not self._unreadable:
                log.warning("guard_metrics_unreadable", error_type=type(exc).__name__)
            self._unreadable = True
            return
        try:
            figures = parse(body.decode("utf-8", "replace").splitlines())
        except ValueError as exc:  # torn at MAX_METRICS_BYTES, or not Prometheus text
            if not self._unreadable:
                log.warning("guard_metrics_unreadable", error_type=type(exc).__name__)
            self._unreadable = True
            return
        self._unreadable = False
        with self._lock:
            self._readings.append((self._clock(), figures))

    def judge(self) -> Trip | None:
        """Judge the watched snapshot on the latest reading; a trip is kept and announced."""
        with self._lock:
            watch = self._watch
            if watch is None or not self._readings:
                return None
            now, latest = self._readings[-1]
            figures = latest.get(watch.snapshot, Figures()).since(watch.start)
            if now - watch.since > self.settings.window:
                self._watch = None
                log.info("promotion_passed", snapshot=watch.snapshot,
                         requests=int(figures.requests),
                         previous_requests=int(watch.baseline.requests),
                         **margins(figures, watch.baseline))
                return None
            found = judge(figures, watch.baseline, self.settings.thresholds)
            if found is None:
                return None
            check, reason = found
            self._trip = Trip(watch.snapshot, watch.previous, check, reason, time.time())
            self._watch = None
            trip = self._trip
        log.warning("guard_tripped", snapshot=trip.snapshot, previous=trip.previous,
                    check=check.value, reason=reason, requests=int(figures.requests),
                    seconds=round(now - watch.since, 1), **margins(figures, watch.baseline))
        self._on_trip()
        return trip


def _ms(seconds: float | None) -> float | None:
    return round(1000 * seconds, 2) if seconds is not None else None
