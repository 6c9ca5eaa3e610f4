"""What the promotion guard compares: one version set's champion figures, and the judgement.

Figures are read from serving's /metrics (serving.telemetry.champion_metrics: requests by outcome,
the model call's latency histogram, answers by class, and a regressor's values as count, sum and
sum of squares, all by version set, a digest that is the same in every replica). Counters only grow
(the values' sum aside, which only the request count moves), so a window's figures are the
difference of two readings, as Prometheus' `increase()` takes them; the p95 is read from the
histogram's buckets as `histogram_quantile()` does.
"""

from __future__ import annotations

import enum
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from registry_sync.settings import setting

PREFIX = "serving_champion_"
MAX_METRICS_BYTES = 4 * 1024 * 1024  # serving's /metrics read at most (a bound, not a limit)
VALUE_SAMPLES = (PREFIX + "values_count", PREFIX + "values_sum", PREFIX + "value_squares_total")
_PLAIN = re.compile(r"[A-Za-z0-9 _.+-]{1,40}")  # a class name fit for a reason, else `other`


class MetricsUnreadable(Exception):
    """The figures could not be read now (serving or Prometheus down, a torn answer)."""


class Check(enum.StrEnum):
    """Which of the guard's comparisons tripped."""

    ERROR_RATE = "error_rate"
    LATENCY = "latency"
    ANSWERS = "answers"
    VALUES = "values"


@dataclass(frozen=True)
class Thresholds:
    """The operator's limits (GUARD_* settings)."""

    min_requests: int = setting("GUARD_MIN_REQUESTS")
    max_error_rate: float = setting("GUARD_MAX_ERROR_RATE")
    max_latency_ratio: float = setting("GUARD_MAX_LATENCY_RATIO")
    min_latency_ms: float = setting("GUARD_MIN_LATENCY_MS")
    max_share_shift: float = setting("GUARD_MAX_SHARE_SHIFT")
    max_mean_shift: float = setting("GUARD_MAX_MEAN_SHIFT")  # in the previous one's std devs
    max_spread_ratio: float = setting("GUARD_MAX_SPREAD_RATIO")


@dataclass(frozen=True)
class Figures:
    """One snapshot's champion counters: requests ok and failed, latency buckets, classes."""

    ok: float = 0.0
    failed: float = 0.0
    buckets: tuple[tuple[float, float], ...] = ()  # (upper bound, cumulative count), sorted
    classes: Mapping[str, float] = field(default_factory=dict)
    values: tuple[float, float, float] = (0.0, 0.0, 0.0)  # a regressor's: count, sum, squares

    @property
    def requests(self) -> float:
        """Requests answered or failed."""
        return self.ok + self.failed

    def since(self, earlier: Figures) -> Figures:
        """What was added after `earlier` (a counter that went back, e.g. a restart: from 0)."""
        if self.requests < earlier.requests:
            return self
        before = dict(earlier.buckets)
        return Figures(self.ok - earlier.ok, self.failed - earlier.failed,
                       tuple((le, max(0.0, n - before.get(le, 0.0))) for le, n in self.buckets),
                       {k: max(0.0, v - earlier.classes.get(k, 0.0))
                        for k, v in self.classes.items()},
                       _three(a - b for a, b in zip(self.values, earlier.values, strict=True)))

    def plus(self, other: Figures) -> Figures:
        """Two pods' counters summed (buckets by bound, classes by name)."""
        buckets = dict(self.buckets)
        for le, n in other.buckets:
            buckets[le] = buckets.get(le, 0.0) + n
        classes = dict(self.classes)
        for k, v in other.classes.items():
            classes[k] = classes.get(k, 0.0) + v
        return Figures(self.ok + other.ok, self.failed + other.failed,
                       tuple(sorted(buckets.items())), classes,
                       _three(a + b for a, b in zip(self.values, other.values, strict=True)))

    def value_stats(self) -> tuple[float, float] | None:
        """The values' mean and standard deviation; None without values."""
        count, total, squares = self.values
        if count <= 0:
            return None
        mean = total / count
        return mean, math.sqrt(max(0.0, squares / count - mean * mean))

    def error_rate(self) -> float:
        """Share of requests failed (0 without requests)."""
        return self.failed / self.requests if self.requests else 0.0

    def p95(self) -> float | None:
        """The 95th percentile of the model call in seconds, interpolated in its bucket."""
        return quantile(0.95, self.buckets)

    def shares(self) -> dict[str, float]:
        """Each class's share of the rows answered."""
        total = sum(self.classes.values())
        return {k: v / total for k, v in self.classes.items()} if total else {}


def quantile(q: float, buckets: tuple[tuple[float, float], ...]) -> float | None:
    """histogram_quantile() over cumulative buckets; None without observations."""
    if not buckets or buckets[-1][1] <= 0:
        return None
    rank = q * buckets[-1][1]
    lower, below = 0.0, 0.0
    for upper, count in buckets:
        if count >= rank:
            if upper == float("inf"):
                return lower  # as Prometheus: the highest finite bound
            return lower + (upper - lower) * ((rank - below) / (count - below or 1.0))
        lower, below = upper, count
    return lower


def shift(new: Mapping[str, float], old: Mapping[str, float]) -> float:
    """Total variation distance between two class shares (0: same, 1: disjoint)."""
    return 0.5 * sum(abs(new.get(k, 0.0) - old.get(k, 0.0)) for k in {*new, *old})


def plain_label(label: str) -> str:
    """A class name fit for a reason and a log, else `other`."""
    return label if _PLAIN.fullmatch(label) else "other"


def parse(lines: Iterable[str]) -> dict[str, Figures]:
    """The champion figures per version set from Prometheus text lines (others ignored)."""
    from prometheus_client.parser import text_string_to_metric_families

    text = "\n".join(line for line in lines if line.startswith(PREFIX)) + "\n"
    raw: dict[str, dict] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            key = sample.labels.get("version_set")
            if not key:
                continue
            entry = raw.setdefault(key, {"ok": 0.0, "failed": 0.0, "buckets": {},
                                              "classes": {}, "values": [0.0, 0.0, 0.0]})
            if sample.name == PREFIX + "requests_total":
                outcome = sample.labels.get("outcome")
                if outcome in ("ok", "failed"):
                    entry[outcome] += sample.value
            elif sample.name == PREFIX + "model_seconds_bucket":
                le = float(sample.labels["le"])
                entry["buckets"][le] = entry["buckets"].get(le, 0.0) + sample.value
            elif sample.name == PREFIX + "answers_total":
                label = plain_label(sample.labels.get("label", ""))
                entry["classes"][label] = entry["classes"].get(label, 0.0) + sample.value
            elif sample.name in VALUE_SAMPLES:
                entry["values"][VALUE_SAMPLES.index(sample.name)] += sample.value
    return {s: Figures(e["ok"], e["failed"], tuple(sorted(e["buckets"].items())),
                       e["classes"], tuple(e["values"])) for s, e in raw.items()}


def margins(new: Figures, old: Figures) -> dict[str, float | None]:
    """What the checks compare, for the log and the bench: rate, p95 ratio, class shift."""
    new_p95, old_p95 = new.p95(), old.p95()
    return {"error_rate": round(new.error_rate(), 4),
            "previous_error_rate": round(old.error_rate(), 4),
            "p95_ms": round(1000 * new_p95, 3) if new_p95 is not None else None,
            "previous_p95_ms": round(1000 * old_p95, 3) if old_p95 is not None else None,
            "p95_ratio": round(new_p95 / old_p95, 3) if new_p95 and old_p95 else None,
            "share_shift": round(shift(new.shares(), old.shares()), 4)
            if new.classes and old.classes else None,
            **_value_margins(new, old)}


def _value_margins(new: Figures, old: Figures) -> dict[str, float | None]:
    """A regressor's window mean and spread beside the previous version's (none: omitted)."""
    new_stats, old_stats = new.value_stats(), old.value_stats()
    if new_stats is None:
        return {}
    return {"mean": round(new_stats[0], 6), "spread": round(new_stats[1], 6),
            "previous_mean": round(old_stats[0], 6) if old_stats else None,
            "previous_spread": round(old_stats[1], 6) if old_stats else None}


def judge(new: Figures, old: Figures, limits: Thresholds) -> tuple[Check, str] | None:
    """The first threshold the new champion crosses against the previous one, or None."""
    if new.requests < limits.min_requests:
        return None
    known = old.requests >= limits.min_requests  # else only the error rate is judged
    allowed = limits.max_error_rate + (old.error_rate() if known else 0.0)
    if new.error_rate() > allowed:
        return Check.ERROR_RATE, (f"error rate {new.error_rate():.1%} over {new.requests:.0f} "
                                  f"requests exceeds {allowed:.1%}")
    new_p95, old_p95 = new.p95(), old.p95()
    if known and new_p95 is not None and old_p95 is not None and \
            new_p95 > limits.max_latency_ratio * old_p95 and \
            1000 * (new_p95 - old_p95) > limits.min_latency_ms:
        return Check.LATENCY, (f"p95 latency {1000 * new_p95:.1f} ms is more than "
                               f"{limits.max_latency_ratio:g}x the previous version's "
                               f"{1000 * old_p95:.1f} ms")
    moved = shift(new.shares(), old.shares())
    if known and sum(old.classes.values()) >= limits.min_requests and moved > \
            limits.max_share_shift:
        top = max(new.shares().items(), key=lambda kv: kv[1], default=("?", 0.0))
        return Check.ANSWERS, (f"answers moved {moved:.0%} from the previous version's class "
                               f"shares (now {top[1]:.0%} {top[0]!r}), more than "
                               f"{limits.max_share_shift:.0%}")
    if known and old.values[0] >= limits.min_requests:
        return _judge_values(new, old, limits)
    return None


def _judge_values(new: Figures, old: Figures, limits: Thresholds) -> tuple[Check, str] | None:
    """A regressor's values: the mean moved by more than max_mean_shift previous spreads, or
    the spread grew or shrank by more than max_spread_ratio (a constant answer has none)."""
    new_stats, old_stats = new.value_stats(), old.value_stats()
    if new_stats is None or old_stats is None:
        return None
    (mean, spread), (old_mean, old_spread) = new_stats, old_stats
    noise = 1e-6 * max(1.0, abs(old_mean))  # what sum-of-squares arithmetic cannot tell apart
    if abs(mean - old_mean) > limits.max_mean_shift * old_spread + noise:
        return Check.VALUES, (f"mean value {mean:.4g} moved from the previous version's "
                              f"{old_mean:.4g} by more than {limits.max_mean_shift:g}x its "
                              f"spread {old_spread:.4g}")
    ratio = limits.max_spread_ratio
    if spread > ratio * old_spread + noise or old_spread > ratio * spread + noise:
        return Check.VALUES, (f"spread of values {spread:.4g} against the previous version's "
                              f"{old_spread:.4g}: more than {ratio:g}x apart")
    return None


def _three(numbers: Iterable[float]) -> tuple[float, float, float]:
    """A regressor's (count, sum, squares) from a computation over two of them."""
    count, total, squares = numbers
    return count, total, squares
