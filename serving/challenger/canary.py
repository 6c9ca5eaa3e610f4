"""Canary: a sticky share of clients answered by the challenger, and the guard that ends it.

A client key (a header named by CANARY_KEY_HEADER, else the client address) is hashed into one
of 10,000 buckets; buckets below CANARY_PERCENT x 100 go to the challenger, so a client stays on
one role while the share holds. The guard judges the latest canary answers: when the error rate
or the p95 latency crosses its threshold, all traffic goes back to the champion until another
challenger arrives, and it says so (log, metric, /api/v1/model, the page).
"""

from __future__ import annotations

import hashlib
import threading
import time
from dataclasses import dataclass

from model_contract import logs
from serving.config import ChallengerConfig

from . import role_metrics
from .comparison import ComparisonLog, Sample

log = logs.get(__name__)
BUCKETS = 10_000


def bucket_of(key: str) -> int:
    """The stable bucket of a client key, 0 to 9,999."""
    digest = hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % BUCKETS


def in_canary(key: str, percent: float) -> bool:
    """Whether this client key falls in the canary share."""
    return bucket_of(key) < round(percent * BUCKETS / 100)


@dataclass(frozen=True)
class GuardTrip:
    """Why and when the guard sent all traffic back to the champion."""

    snapshot: str
    reason: str
    at: float

    def to_json(self) -> dict[str, object]:
        """The trip as shown by /api/v1/model."""
        return {"snapshot": self.snapshot, "reason": self.reason,
                "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.at))}


class CanaryGuard:
    """Watches one challenger's canary answers and trips once thresholds are crossed."""

    def __init__(self, config: ChallengerConfig, snapshot: str):
        self._config, self.snapshot = config, snapshot
        self.answers = ComparisonLog(config.guard_window)
        self.trip: GuardTrip | None = None
        self._lock = threading.Lock()

    def record(self, sample: Sample) -> None:
        """Record one canary answer (or failure) and judge the window."""
        self.answers.add(sample)
        if self.trip is None:
            self._judge()

    def stop(self, reason: str) -> None:
        """Trip now, whatever the window says (the challenger overran its deadline)."""
        with self._lock:
            if self.trip is None:
                self.trip = GuardTrip(self.snapshot, reason, time.time())
                role_metrics.GUARD_TRIPPED.set(1)
                log.warning("canary_guard_tripped", snapshot=self.snapshot, reason=reason)

    def _judge(self) -> None:
        window, _ = self.answers.figures()
        config = self._config
        if window.samples < config.guard_min_answers:
            return
        reason = None
        if (window.error_rate or 0) > config.guard_max_error_rate:
            reason = (f"error rate {window.error_rate:.1%} over the last {window.samples} canary "
                      f"answers exceeds {config.guard_max_error_rate:.1%}")
        elif (window.p95_latency_ms or 0) > config.guard_max_latency_ms:
            reason = (f"p95 latency {window.p95_latency_ms:.0f} ms over the last "
                      f"{window.samples} canary answers exceeds "
                      f"{config.guard_max_latency_ms:.0f} ms")
        if reason is not None:
            self.stop(reason)
