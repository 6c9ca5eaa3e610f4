"""Part 12: a shadow challenger that computes, scored in the worker's thread or in a process.

Servings of the same champion (2 workers, the front): without a challenger; with a challenger
that computes on every call (a 15 ms Python loop, or a 35 ms C call holding the GIL) scored on
the worker's thread (SHADOW_PROCESS=false, as before) and in a process of its own (the default).
Interleaved wrk rounds; each p99 ratio is taken within a round, then the median.
"""

from __future__ import annotations

import json
from pathlib import Path

import requests

from devkit.models import computing
from devkit.snapshots import build_snapshot
from registry_sync.store.publish import publish as publish_link

from . import models
from .common import VALID, Processes, answered, median, wrk
from .report import Section
from .servers import serving

ROUNDS = 2
SECONDS = 5
CONNECTIONS = 8
# name -> (challenger's computation or None, SHADOW_PROCESS)
RUNS = {"none": (None, "true"), "loop-thread": ("loop", "false"),
        "loop-process": ("loop", "true"), "c-thread": ("c", "false"),
        "c-process": ("c", "true")}


def _root(work: Path, name: str, how: str | None) -> Path:
    """A MODEL_ROOT: the champion, and a computing challenger as `candidate` unless how=None."""
    trained = models.trained()
    root = work / f"root-{name}"
    build_snapshot(root, {models.CLASSIFIER: trained.pipeline}, "1.0.0")
    if how is not None:
        folder = computing(trained.pickled, work / f"challenger-{name}", how)
        candidate = build_snapshot(root, {models.CLASSIFIER: folder}, "1.1.0", publish=False)
        publish_link(root, candidate, link="candidate")
    return root


def run(work: Path) -> Section:
    """Champion p99 and throughput with a computing shadow challenger, thread vs process."""
    section = Section("12. A computing shadow challenger: the worker's thread or a process")
    body = json.dumps(VALID)
    rounds: list[dict[str, dict]] = []
    with Processes(work) as processes:
        servers = {name: serving(processes, f"isolation-{name}", _root(work, name, how),
                                 SHADOW_PROCESS=process)
                   for name, (how, process) in RUNS.items()}
        for _ in range(ROUNDS):
            rounds.append({name: wrk(server.url + "/api/v1/predict", SECONDS, CONNECTIONS, body,
                                     work) for name, server in servers.items()})
        shadow = {name: _shadow(server.url) for name, server in servers.items() if name != "none"}
    section.table("the challenger's shadow figures (all workers)", ["run", "compared", "errors"],
                  [[name, *figures] for name, figures in shadow.items()])
    section.table(f"wrk, {CONNECTIONS} connections, {SECONDS} s per run, {ROUNDS} interleaved "
                  "rounds (medians)", ["run", "requests/s", "p50 ms", "p99 ms", "p99 / none"],
                  [[name, round(median([r[name]["rps"] for r in rounds])),
                    round(median([r[name]["p50_ms"] for r in rounds]), 2),
                    round(median([r[name]["p99_ms"] for r in rounds]), 2),
                    round(median([r[name]["p99_ms"] / r["none"]["p99_ms"] for r in rounds]), 2)]
                   for name in RUNS])
    for name in ("loop-process", "c-process"):
        ratio = median([r[name]["p99_ms"] / r["none"]["p99_ms"] for r in rounds])
        section.target(f"champion p99, {name} / none", f"{ratio:.2f}x", "<= 1.2x", ratio <= 1.2,
                       evidence={f"answers, {name}": answered(r[name] for r in rounds),
                                 "answers, none": answered(r["none"] for r in rounds)})
    failed = sum(r[name]["non_2xx"] + r[name]["socket_errors"] for r in rounds for name in RUNS)
    section.target("failed predictions (all runs)", str(failed), "0", failed == 0,
                   evidence={"answers": answered(r[name] for r in rounds for name in RUNS)})
    section.figures.update(rounds=rounds, shadow=shadow)
    return section


def _shadow(url: str) -> list[int]:
    """Inputs the challenger compared, and its errors (overruns, deaths), on all workers."""
    figures = requests.get(url + "/api/v1/model", timeout=10).json()["roles"]["challenger"]
    return [figures["all_workers"]["compared"], figures["all_workers"]["errors"]]
