"""The promotion guard: watches a newly published champion and trips when it hurts traffic.

A thread reads the champion figures every GUARD_SAMPLE_INTERVAL seconds (this pod's serving
/metrics, or the Deployment's sums from Prometheus: registry_sync.guard.prometheus) and keeps
the readings of the last two windows. When the syncer publishes a new snapshot it calls
`watch()`: the previous snapshot's figures over its last GUARD_WINDOW seconds become the
baseline, and for GUARD_WINDOW seconds the new snapshot's figures since publication are judged
against it (registry_sync.guard.figures). A trip is kept for the sync loop (`take()`), which is
woken to roll back: the guard never writes MODEL_ROOT's snapshots. In a cluster only the leader
watches. A standalone sidecar keeps its open window on disk (registry_sync.guard.journal) and,
restarted inside it, resumes it.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import requests

from model_contract import logs
from model_contract.manifest import Manifest
from registry_sync.guard import journal as guard_journal
from registry_sync.guard.figures import (
    MAX_METRICS_BYTES,
    Check,
    Figures,
    MetricsUnreadable,
    Thresholds,
    judge,
    margins,
    parse,
)
from registry_sync.guard.reports import Reports
from registry_sync.settings import setting

log = logs.get(__name__)
Reading = tuple[float, dict[str, Figures]]  # (monotonic seconds, figures per snapshot)


@dataclass(frozen=True)
class GuardSettings:
    """GUARD_* settings: on or off, the window, the sampling and the thresholds."""

    enabled: bool = setting("GUARD_ENABLED")
    window: float = setting("GUARD_WINDOW")
    sample_interval: float = setting("GUARD_SAMPLE_INTERVAL")
    thresholds: Thresholds = field(default_factory=Thresholds)
    comet_tag: str = setting("GUARD_COMET_TAG")  # tag put on a rolled-back version; empty: none
    prometheus_url: str = setting("PROMETHEUS_URL")  # set: the Deployment's figures come from it


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
    key: str  # the version set whose figures are judged
    since: float
    start: Figures
    baseline: Figures


def serving_reader(url: str, session: requests.Session | None = None
                   ) -> Callable[[], dict[str, Figures]]:
    """A function reading this pod's champion figures from serving's /metrics at url."""
    session = session or requests.Session()

    def read() -> dict[str, Figures]:
        try:
            with session.get(url, timeout=(2.0, 5.0), stream=True) as response:
                response.raise_for_status()
                body = response.raw.read(MAX_METRICS_BYTES, decode_content=True)
            return parse(body.decode("utf-8", "replace").splitlines())
        except (requests.RequestException, ValueError) as exc:  # down, or torn at the cap
            raise MetricsUnreadable(type(exc).__name__) from exc

    return read


class PromotionGuard:
    """Reads the champion figures and judges each new snapshot for one window."""

    def __init__(self, settings: GuardSettings, read: Callable[[], dict[str, Figures]],
                 on_trip: Callable[[], None] = lambda: None,
                 clock: Callable[[], float] = time.monotonic):
        self.settings, self._read, self._on_trip = settings, read, on_trip
        self._clock = clock
        kept = int(2 * settings.window / settings.sample_interval) + 4
        self._readings: deque[Reading] = deque(maxlen=kept)
        self._watch: _Watch | None = None
        self._trip: Trip | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._unreadable = False
        self.deciding: Callable[[], bool] = lambda: True  # in a cluster: leading?
        self.journal: Path | None = None  # MODEL_ROOT, where the open window is kept
        # a follower without Prometheus: each reading sent to the leader (guard_reports)
        self.on_reading: Callable[[dict[str, Figures]], None] | None = None
        self.reports: Reports | None = None  # a leader without Prometheus: followers' figures

    def resume(self, current: str | None) -> None:
        """Go on with the window a restarted sidecar left open on `current`, if any."""
        if self.journal is None:
            return
        found = guard_journal.load(self.journal, current, self.settings.window)
        if found is None:
            return
        elapsed = time.time() - found.started_at
        with self._lock:
            self._watch = _Watch(found.snapshot, found.previous, found.key,
                                 self._clock() - elapsed, found.start, found.baseline)
        log.info("promotion_watch_resumed", snapshot=found.snapshot, previous=found.previous,
                 seconds=round(elapsed, 1), window=self.settings.window)

    def start(self) -> None:
        """Start reading serving's metrics from a daemon thread."""
        self._thread = threading.Thread(target=self._run, name="promotion-guard", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread and wait for it."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def watch(self, new: Manifest, previous: Manifest | None) -> None:
        """A snapshot was published over `previous`: judge it for one window from now (only
        where this sidecar decides: standalone, or the leader)."""
        if not self.deciding() or (previous and previous.version_set == new.version_set):
            return
        self.sample()
        with self._lock:
            latest = self._readings[-1][1] if self._readings else {}
            baseline = self._window_of(previous.version_set) if previous else Figures()
            self._watch = _Watch(new.snapshotId, previous.snapshotId if previous else None,
                                 new.version_set, self._clock(),
                                 latest.get(new.version_set, Figures()), baseline)
            self._trip = None
        self._keep(self._watch)
        log.info("promotion_watched", snapshot=new.snapshotId,
                 previous=previous.snapshotId if previous else None, version_set=new.version_set,
                 window=self.settings.window, baseline_requests=int(baseline.requests),
                 baseline_p95_ms=_ms(baseline.p95()))

    def _keep(self, watch: _Watch | None) -> None:
        """Write the open window (None: closed) where a restarted sidecar finds it."""
        if self.journal is None:
            return
        if watch is None:
            guard_journal.clear(self.journal)
            return
        started = time.time() - (self._clock() - watch.since)
        guard_journal.save(self.journal, guard_journal.OpenWindow(
            watch.snapshot, watch.previous, watch.key, started, watch.start, watch.baseline))

    def take(self) -> Trip | None:
        """The trip not yet acted on, once."""
        with self._lock:
            trip, self._trip = self._trip, None
            return trip

    def keep(self) -> set[str]:
        """Snapshots a rollback may go back to now: never to be pruned."""
        watch, trip = self._watch, self._trip
        return {s for s in (watch and watch.previous, trip and trip.previous) if s}

    def watching(self) -> str | None:
        """The snapshot under watch now, if any."""
        watch = self._watch
        return watch.snapshot if watch else None

    def _window_of(self, key: str) -> Figures:
        """A version set's figures over the last window of readings (lock held)."""
        if not self._readings:
            return Figures()
        now, latest = self._readings[-1]
        first = next((r for t, r in self._readings if t >= now - self.settings.window), latest)
        return latest.get(key, Figures()).since(first.get(key, Figures()))

    def _run(self) -> None:
        while not self._stop.wait(self.settings.sample_interval):
            try:
                self.sample()
                self.judge()
            except Exception as exc:  # the guard's loop: report, never die
                log.error("guard_failed", error_type=type(exc).__name__, error=str(exc),
                          exc_info=exc)

    def sample(self) -> None:
        """Read the figures once (unreadable now: skipped, and logged once)."""
        try:
            figures = self._read()
        except MetricsUnreadable as exc:
            if not self._unreadable:
                log.warning("guard_metrics_unreadable", error=str(exc)[:200])
            self._unreadable = True
            return
        self._unreadable = False
        with self._lock:
            # A version set unchanged since the last reading shares its figures: the ring costs
            # a reference per set and reading, whatever serving has served since it started.
            last = self._readings[-1][1] if self._readings else {}
            figures = {k: last[k] if last.get(k) == v else v for k, v in figures.items()}
            self._readings.append((self._clock(), figures))
        if self.on_reading is not None and not self.deciding():
            self.on_reading(figures)

    def judge(self) -> Trip | None:
        """Judge the watched snapshot on the latest reading; a trip is kept and announced."""
        with self._lock:
            watch = self._watch
            if watch is None or not self._readings:
                return None
            now, latest = self._readings[-1]
            figures = latest.get(watch.key, Figures()).since(watch.start)
            if now - watch.since > self.settings.window:
                self._watch = None
                self._keep(None)
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
            self._keep(None)
            trip = self._trip
        log.warning("guard_tripped", snapshot=trip.snapshot, previous=trip.previous,
                    check=check.value, reason=reason, requests=int(figures.requests),
                    seconds=round(now - watch.since, 1), **margins(figures, watch.baseline))
        self._on_trip()
        return trip


def _ms(seconds: float | None) -> float | None:
    return round(1000 * seconds, 2) if seconds is not None else None
