"""Prometheus metrics per role (champion, challenger), summed over workers like the others.

The comparison's totals are counters, so that `/metrics`, the page and the verdict in Comet
read the same figures for all workers together (`totals`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, multiprocess

from serving.telemetry.metrics import REGISTRY

ANSWERS = Counter("serving_role_answers", "Prediction requests answered, by role and version",
                  ["role", "version"], registry=REGISTRY)
SHADOW_SCORED = Counter("serving_shadow_scored",
                        "Inputs the challenger scored in shadow, by version and outcome "
                        "(agreed, disagreed, failed; compared for a regressor)",
                        ["version", "outcome"], registry=REGISTRY)
SHADOW_GAP = Counter("serving_shadow_probability_gap",
                     "Sum of |probability difference| over compared inputs, by version",
                     ["version"], registry=REGISTRY)
SHADOW_DIFF = Counter("serving_shadow_value_diff",
                      "Sum of |value difference| over compared inputs of a regressor, by version",
                      ["version"], registry=REGISTRY)
SHADOW_RELATIVE = Counter("serving_shadow_relative_diff",
                          "Sum of |value difference| / |champion's value| (at least 1) over "
                          "compared inputs of a regressor, by version", ["version"],
                          registry=REGISTRY)
SHADOW_DROPPED = Counter("serving_shadow_dropped",
                         "Inputs not given to the challenger because its queue was full (it "
                         "scores only on CPU the workers leave), by version",
                         ["version"], registry=REGISTRY)
CHALLENGER_LATENCY = Histogram("serving_challenger_duration_seconds",
                               "Time the challenger took per input, by mode (canary: one "
                               "observation per answer; shadow: one per challenger call, its "
                               "time per input)",
                               ["mode"], registry=REGISTRY,
                               buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                        0.5, 1.0, 2.5))
CANARY_FAILED = Counter("serving_canary_failed",
                        "Canary requests the challenger failed (answered by the champion)",
                        ["version"], registry=REGISTRY)
OVERRUNS = Counter("serving_prediction_overruns",
                   "Model calls stopped at PREDICT_TIMEOUT (the client got 504, or the champion's "
                   "answer for a canary), by role and version", ["role", "version"],
                   registry=REGISTRY)
# livemax: 1 while any live worker's champion has overrun (a record in VALIDATION_DIR).
CHAMPION_OVERRAN = Gauge("serving_champion_overran",
                         "1 when the served champion has overrun PREDICT_TIMEOUT (it hangs on "
                         "some inputs)", multiprocess_mode="livemax", registry=REGISTRY)
# livemax: 1 while any live worker's guard holds the canary off.
GUARD_TRIPPED = Gauge("serving_canary_guard_tripped",
                      "1 when the guard sent all traffic back to the champion",
                      multiprocess_mode="livemax", registry=REGISTRY)
CHALLENGER_INFO = Gauge("serving_challenger_info", "The challenger's version (1) or no longer (0)",
                        ["snapshot", "version"], multiprocess_mode="livemax",
                        registry=REGISTRY)


@dataclass(frozen=True)
class ShadowTotals:
    """All workers' shadow figures for one challenger version."""

    compared: int
    agreed: int
    failed: int
    gap_sum: float
    valued: int = 0  # a regressor's compared inputs
    diff_sum: float = 0.0
    relative_sum: float = 0.0
    dropped: int = 0  # inputs never given to it: its queue was full

    @property
    def agreement(self) -> float | None:
        """Share of compared inputs with the same label."""
        return self.agreed / self.compared if self.compared else None

    @property
    def mean_gap(self) -> float | None:
        """Mean |probability difference| over compared inputs."""
        return self.gap_sum / self.compared if self.compared else None

    @property
    def mean_difference(self) -> float | None:
        """A regressor's mean |value difference| over compared inputs."""
        return self.diff_sum / self.valued if self.valued else None

    @property
    def mean_relative(self) -> float | None:
        """A regressor's mean relative |value difference| over compared inputs."""
        return self.relative_sum / self.valued if self.valued else None


def totals(metrics_dir: Path | None, version: str) -> ShadowTotals:
    """The shadow counters of a version, summed over every worker (or this process alone)."""
    registry = REGISTRY
    if metrics_dir is not None:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=str(metrics_dir))
    scored: dict[str, float] = {}
    sums = {"serving_shadow_probability_gap_total": 0.0, "serving_shadow_value_diff_total": 0.0,
            "serving_shadow_relative_diff_total": 0.0}
    for family in registry.collect():
        for sample in family.samples:
            if sample.labels.get("version") != version:
                continue
            if sample.name == "serving_shadow_scored_total":
                scored[sample.labels["outcome"]] = sample.value
            elif sample.name == "serving_shadow_dropped_total":
                scored["dropped"] = sample.value
            elif sample.name in sums:
                sums[sample.name] = sample.value
    agreed, disagreed = int(scored.get("agreed", 0)), int(scored.get("disagreed", 0))
    gap, diff, relative = sums.values()
    return ShadowTotals(agreed + disagreed, agreed, int(scored.get("failed", 0)), gap,
                        int(scored.get("compared", 0)), diff, relative,
                        int(scored.get("dropped", 0)))
