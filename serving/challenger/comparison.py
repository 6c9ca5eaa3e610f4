"""How the challenger compares with the champion: one sample per input, figured as typed values.

A sample is one input scored by both (shadow) or answered by the challenger (canary): for a
classifier whether the labels agree and the gap of the probabilities both give the champion's
label (with more than two classes, read from the challenger's per-class probabilities), for a
regressor the absolute and relative differences of the values; the challenger's latency, or that
it failed. The log keeps a rolling window and running totals for one challenger; `figures()`
reads both as Comparison.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import NamedTuple


class Sample(NamedTuple):
    """One input seen by the challenger: agreement and gap (None when not compared; a
    regressor's has no agreement, its gap is |value difference|, `relative` that relative to
    the champion's value), latency.

    A named tuple: the shadow scorer makes one per input, and a frozen dataclass costs 5x more
    to build."""

    seconds: float
    failed: bool = False
    agreed: bool | None = None
    gap: float | None = None
    relative: float | None = None


@dataclass(frozen=True)
class Comparison:
    """Figures over some samples: how often the labels agree, how far the probabilities are
    (classifiers); how far the values are, absolute and relative (regressors)."""

    samples: int = 0
    compared: int = 0
    agreement: float | None = None
    mean_abs_probability_diff: float | None = None
    errors: int = 0
    error_rate: float | None = None
    mean_latency_ms: float | None = None
    p95_latency_ms: float | None = None
    mean_abs_difference: float | None = None
    mean_relative_difference: float | None = None

    def to_json(self) -> dict[str, object]:
        """The figures as shown by /api/v1/model."""
        return asdict(self)


def probability_gap(champion: tuple[str, float], challenger: tuple[str, float],
                    class_count: int, of_label: float | None = None) -> float:
    """|difference| of the probabilities both give the champion's label.

    Known exactly when the labels agree, with two classes (the other label's probability is one
    minus), or from `of_label`, the challenger's probability of the champion's label (its
    per-class probabilities); otherwise the gap between the two answers' own probabilities.
    """
    (label, probability), (other_label, other) = champion, challenger
    if of_label is not None:
        other = of_label
    elif label != other_label and class_count == 2:
        other = 1.0 - other
    return abs(probability - other)


def _p95(latencies: list[float]) -> float | None:
    if not latencies:
        return None
    ordered = sorted(latencies)
    return ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]


@dataclass
class _Totals:
    samples: int = 0
    compared: int = 0
    agreed: int = 0
    gap_sum: float = 0.0
    errors: int = 0
    seconds_sum: float = 0.0
    valued: int = 0  # regressors' compared samples
    diff_sum: float = 0.0
    relative_sum: float = 0.0

    def add(self, sample: Sample) -> None:
        self.samples += 1
        self.seconds_sum += sample.seconds
        self.errors += sample.failed
        if sample.agreed is not None:
            self.compared += 1
            self.agreed += sample.agreed
            self.gap_sum += sample.gap or 0.0
        elif sample.gap is not None:
            self.valued += 1
            self.diff_sum += sample.gap
            self.relative_sum += sample.relative or 0.0

    def figures(self, p95_ms: float | None) -> Comparison:
        compared, samples, valued = self.compared, self.samples, self.valued
        return Comparison(
            samples, compared + valued, round(self.agreed / compared, 6) if compared else None,
            round(self.gap_sum / compared, 6) if compared else None, self.errors,
            round(self.errors / samples, 6) if samples else None,
            round(1000 * self.seconds_sum / samples, 3) if samples else None, p95_ms,
            round(self.diff_sum / valued, 6) if valued else None,
            round(self.relative_sum / valued, 6) if valued else None)


class ComparisonLog:
    """The samples of one challenger: a rolling window of the latest, and totals (thread-safe)."""

    def __init__(self, window: int):
        self._window: deque[Sample] = deque(maxlen=window)
        self._totals = _Totals()
        self._lock = threading.Lock()

    def add(self, sample: Sample) -> None:
        """Record one sample."""
        self.add_all((sample,))

    def add_all(self, samples: Iterable[Sample]) -> None:
        """Record several samples at once."""
        with self._lock:
            for sample in samples:
                self._window.append(sample)
                self._totals.add(sample)

    def figures(self) -> tuple[Comparison, Comparison]:
        """(rolling window, total) figures."""
        with self._lock:
            window = list(self._window)
            totals = _Totals(**asdict(self._totals))
        rolling = _Totals()
        for sample in window:
            rolling.add(sample)
        p95 = _p95([s.seconds for s in window])
        p95_ms = round(1000 * p95, 3) if p95 is not None else None
        return rolling.figures(p95_ms), totals.figures(None)
