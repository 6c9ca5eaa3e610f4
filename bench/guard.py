"""Part 15: the promotion guard under normal load: good promotions in a row, no false rollback.

The whole pod (local registry, sidecar with GUARD_ENABLED and the default thresholds, a short
GUARD_WINDOW, serving with 2 workers) under a steady load of ten live-like rows in turn (2
clients). Healthy versions, the two trained pipelines in turn (they differ: fewer, narrower
trees), are promoted one after the other; each must pass its window. The sidecar logs what the
guard compared at the end of each window (`promotion_passed`): the margin is the threshold over
the largest value normal promotions reached.
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

from devkit.jsonlog import json_lines
from devkit.load import Load
from devkit.models import guard_rows
from registry_sync.guard.figures import Thresholds

from . import models
from .common import Processes, median
from .report import Section
from .servers import pod

ROUNDS = 20
WINDOW = 8.0
INTERVAL = 1.0


def _verdicts(log: Path) -> list[dict]:
    """The guard's verdicts so far: passed windows and trips, in order."""
    return [e for e in json_lines(log) if e.get("event") in ("promotion_passed", "guard_tripped")]


def _promote_all(handle, side, trained) -> list[dict]:
    """Promote ROUNDS healthy versions, each once the previous one's window ended."""
    for i in range(ROUNDS):
        folder = trained.alternative if i % 2 == 0 else trained.pipeline
        handle.register_folder(models.CLASSIFIER, f"1.{i + 1}.0", folder, status="Production")
        deadline = time.monotonic() + WINDOW + 120
        while len(_verdicts(side.log)) <= i:
            if time.monotonic() > deadline:
                raise RuntimeError(f"no verdict on 1.{i + 1}.0 within {WINDOW + 120:g} s")
            time.sleep(0.5)
    return _verdicts(side.log)


def _row(name: str, limit: float, values: list[float], unit: str = "") -> list:
    worst = max(values) if values else None
    margin = f"{limit / worst:.1f}x" if worst else "no trip possible"
    return [name, f"{limit:g}{unit}", f"{worst:g}{unit}" if worst is not None else "-", margin]


def run(work: Path) -> Section:
    """ROUNDS healthy promotions under load with the guard on: trips, and the margins."""
    section = Section("15. Promotion guard: false-trip margin under normal load")
    trained = models.trained()
    limits = Thresholds()
    with Processes(work) as processes:
        handle, app, side = pod(processes, work / "models", models.CLASSIFIER, trained.pipeline,
                                INTERVAL, GUARD_ENABLED="true", GUARD_WINDOW=str(WINDOW),
                                GUARD_SAMPLE_INTERVAL="0.5")
        with Load(app.url, clients=2, seconds=ROUNDS * (WINDOW + 60), max_requests=10**7,
                  bodies=guard_rows()) as load:
            time.sleep(WINDOW)  # the first version's baseline
            verdicts = _promote_all(handle, side, trained)
            load.stop()
        failures, answered = load.failures(), len(load.answers)
    failed = len(failures)
    kinds = Counter(f"{a.status} {(a.error or '')[:60]}".strip() for a in failures)
    passed = [v for v in verdicts if v["event"] == "promotion_passed"]
    trips = [v for v in verdicts if v["event"] == "guard_tripped"]
    excess = [max(0.0, v["error_rate"] - v["previous_error_rate"]) for v in passed]
    ratios = [v["p95_ratio"] for v in passed if v.get("p95_ratio")]
    growths = [v["p95_ms"] - v["previous_p95_ms"] for v in passed
               if v.get("p95_ms") is not None and v.get("previous_p95_ms") is not None]
    shifts = [v["share_shift"] for v in passed if v.get("share_shift") is not None]
    section.target(f"false rollbacks in {ROUNDS} healthy promotions under load", str(len(trips)),
                   "0", not trips,
                   evidence={"requests": answered, "windows passed": len(passed)})
    section.table(f"GUARD_WINDOW={WINDOW:g} s, default thresholds, {len(passed)} windows "
                  f"passed (median {median([v['requests'] for v in passed]):.0f} requests each), "
                  f"{failed} of {answered} requests failed"
                  + (f" ({', '.join(f'{n} x {k}' for k, n in kinds.most_common(3))})"
                     if kinds else ""),
                  ["check", "threshold", "worst measured", "margin"],
                  [_row("error rate beyond the previous", limits.max_error_rate, excess),
                   _row("p95 model time ratio (both this ...", limits.max_latency_ratio, ratios),
                   _row("... and this growth must be passed)", limits.min_latency_ms, growths,
                        " ms"),
                   _row("class share shift", limits.max_share_shift, shifts)])
    section.figures.update(passed=passed, trips=trips, window=WINDOW, requests=answered,
                           failed=failed, failures=dict(kinds))
    return section

