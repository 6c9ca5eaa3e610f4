"""Part 12: a shadow challenger that computes, scored in the worker's thread or in a process.

Servings of the same champion (2 workers, the front): without a challenger; with a challenger
that computes on every call (a 15 ms Python loop, or a 35 ms C call holding the GIL) scored on
the worker's thread (SHADOW_PROCESS=false, as before) and in a process of its own (the default,
under SCHED_IDLE: it scores on CPU the workers leave, so with wrk keeping them busy it compares
fewer inputs and its queue drops more). Interleaved wrk rounds; after a run with a challenger,
its figures are left to settle (its backlog scored) before the next server's run. A control run:
the champion alone with a SCHED_IDLE busy loop on each CPU (IDLE_BUSY). Each p99 ratio is taken
within a round, then the median.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import requests

from devkit.models import computing
from devkit.snapshots import build_snapshot
from registry_sync.store.publish import publish as publish_link

from . import models
from .common import VALID, Processes, answered, median, wrk
from .report import Section
from .servers import serving

ROUNDS = 4  # p99 ratios of single rounds swing with the load others put on the machine
DRAIN_LOOK = 1.2  # seconds between looks at a challenger's figures (cached 1 s by serving)
DRAIN_MOST = 10.0
SECONDS = 5
CONNECTIONS = 8
# name -> (challenger's computation or None, SHADOW_PROCESS)
RUNS = {"none": (None, "true"), "loop-thread": ("loop", "false"),
        "loop-process": ("loop", "true"), "c-thread": ("c", "false"),
        "c-process": ("c", "true")}
# A control: the champion alone while a SCHED_IDLE busy loop per CPU takes the time the workers
# leave, as the challenger's process does. On a VM a CPU that never idles wakes a worker sooner
# (no halt to leave): a process challenger's p99 is compared with this run too.
IDLE_BUSY = "none, idle CPU busy"


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
            figures = {name: _measured(server.url, body, work, name != "none")
                       for name, server in servers.items()}
            with _idle_cpu_busy():
                figures[IDLE_BUSY] = _measured(servers["none"].url, body, work, False)
            rounds.append(figures)
        shadow = {name: _shadow(server.url) for name, server in servers.items() if name != "none"}
    section.table("the challenger's shadow figures (all workers)",
                  ["run", "compared", "errors", "dropped (queue full)"],
                  [[name, *figures] for name, figures in shadow.items()])
    runs = [*RUNS, IDLE_BUSY]
    section.table(f"wrk, {CONNECTIONS} connections, {SECONDS} s per run, {ROUNDS} interleaved "
                  "rounds (medians)", ["run", "requests/s", "p50 ms", "p99 ms", "p99 / none",
                                       f"p99 / {IDLE_BUSY}"],
                  [[name, round(median([r[name]["rps"] for r in rounds])),
                    round(median([r[name]["p50_ms"] for r in rounds]), 2),
                    round(median([r[name]["p99_ms"] for r in rounds]), 2),
                    round(median([r[name]["p99_ms"] / r["none"]["p99_ms"] for r in rounds]), 2),
                    round(median([r[name]["p99_ms"] / r[IDLE_BUSY]["p99_ms"] for r in rounds]),
                          2)]
                   for name in runs])
    for name in ("loop-process", "c-process"):
        for base in ("none", IDLE_BUSY):  # the second: the challenger's cost without the VM's
            ratio = median([r[name]["p99_ms"] / r[base]["p99_ms"] for r in rounds])
            section.target(f"champion p99, {name} / {base}", f"{ratio:.2f}x", "<= 1.2x",
                           ratio <= 1.2,
                           evidence={f"answers, {name}": answered(r[name] for r in rounds),
                                     f"answers, {base}": answered(r[base] for r in rounds)})
    failed = sum(r[name]["non_2xx"] + r[name]["socket_errors"] for r in rounds for name in runs)
    section.target("failed predictions (all runs)", str(failed), "0", failed == 0,
                   evidence={"answers": answered(r[name] for r in rounds for name in runs)})
    section.figures.update(rounds=rounds, shadow=shadow)
    return section


def _measured(url: str, body: str, work: Path, challenger: bool) -> dict:
    """One wrk run; then, with a challenger, the wait for its queues to empty, so that its
    backlog (up to SHADOW_QUEUE_SIZE inputs a worker) does not score during the next run."""
    result = wrk(url + "/api/v1/predict", SECONDS, CONNECTIONS, body, work)
    if challenger:
        ends, last = time.monotonic() + DRAIN_MOST, None
        while time.monotonic() < ends and (figures := _shadow(url)) != last:
            last = figures
            time.sleep(DRAIN_LOOK)
    return result


@contextlib.contextmanager
def _idle_cpu_busy() -> Iterator[None]:
    """A SCHED_IDLE busy loop per CPU while the block runs."""
    def idle() -> None:  # in the child, before it runs Python
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))

    loops = [subprocess.Popen([sys.executable, "-c", "while True: pass"], preexec_fn=idle)
             for _ in range(os.cpu_count() or 1)]
    try:
        yield
    finally:
        for loop in loops:
            loop.kill()
            loop.wait()


def _shadow(url: str) -> list[int]:
    """Inputs the challenger compared, its errors (overruns, deaths), and inputs its full queue
    dropped, on all workers."""
    everyone = requests.get(url + "/api/v1/model", timeout=10).json()["roles"]["challenger"][
        "all_workers"]
    return [everyone["compared"], everyone["errors"], everyone["dropped"]]
