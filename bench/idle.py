"""Part 7: idle cost: requests per poll, bytes when nothing changed, CPU and RSS at rest.

The whole system runs (local registry, sidecar polling every INTERVAL seconds, serving with 2
workers) with nothing changing for IDLE seconds after the first sync. The registry counts the
requests it receives; the sidecar's metrics count polls and downloaded bytes.
"""

from __future__ import annotations

import time
from pathlib import Path

import requests

from . import models
from .common import Processes, cpu_seconds, mib
from .report import Section
from .servers import metric, pod

INTERVAL = 2.0
IDLE = 30.0


def _polls(side) -> tuple[float, float]:
    text = requests.get(side.url + "/metrics", timeout=10).text
    return (metric(text, "registry_sync_attempts_total"),
            metric(text, "registry_sync_downloaded_bytes_total"))


def run(work: Path) -> Section:
    """Start everything, wait for the first sync, then watch it idle."""
    section = Section("7. Idle cost")
    trained = models.trained()
    root = work / "models"
    with Processes(work) as processes:
        handle, app, side = pod(processes, root, models.CLASSIFIER, trained.pipeline, INTERVAL)
        time.sleep(2 * INTERVAL)  # let workers settle and the first poll after publishing pass
        handle.reset_request_counts()
        polls_before, bytes_before = _polls(side)
        side_procs, app_procs = side.family(), app.family()
        cpu_side, cpu_app = cpu_seconds(side_procs), cpu_seconds(app_procs)
        started = time.monotonic()
        time.sleep(IDLE)
        elapsed = time.monotonic() - started
        side_cpu = (cpu_seconds(side_procs) - cpu_side) / elapsed
        app_cpu = (cpu_seconds(app_procs) - cpu_app) / elapsed
        polls_after, bytes_after = _polls(side)
        counts = handle.request_counts()
        rss = {"sidecar": side_procs[0].memory_info().rss,
               "serving master": app_procs[0].memory_info().rss,
               **{f"serving worker {i + 1}": p.memory_info().rss
                  for i, p in enumerate(app_procs[1:])}}
    polls = polls_after - polls_before
    per_poll = counts["total"] / polls if polls else float("nan")
    downloaded = bytes_after - bytes_before
    section.table(f"{IDLE:g} s idle, SYNC_INTERVAL={INTERVAL:g} s, 1 registry model",
                  ["figure", "value"],
                  [["polls", int(polls)], ["registry requests", counts["total"]],
                   ["registry requests by path", ", ".join(
                       f"{k}: {v}" for k, v in counts["by_path"].items())],
                   ["bytes downloaded", int(downloaded)],
                   ["sidecar CPU, % of a core", round(side_cpu * 100, 2)],
                   ["serving CPU (master + 2 workers), % of a core", round(app_cpu * 100, 2)],
                   *[[f"RSS at rest: {k}, MiB", mib(v)] for k, v in rss.items()]])
    # A poll may fall between resetting the counts and reading the metrics: one poll of slack.
    section.target("registry requests per poll per model", f"{per_poll:.2f}", "1",
                   polls > 0 and abs(counts["total"] - polls) <= 1,
                   evidence={"polls": polls, "registry requests": counts["total"]})
    section.target("bytes downloaded when nothing changed", str(int(downloaded)), "0",
                   downloaded == 0, evidence={"polls": polls})
    section.target("sidecar CPU when idle", f"{side_cpu:.2%} of a core", "< 1%", side_cpu < 0.01,
                   evidence={"sidecar processes": len(side_procs), "seconds idle": elapsed})
    section.notes.append(
        "RSS counts shared pages in every process: the serving master imports the libraries "
        "before forking its workers (serving/prefork.py), so most of each worker's RSS "
        "is shared with the master (see part 6 for USS and PSS).")
    section.figures.update(polls=polls, counts=counts, downloaded=downloaded,
                           sidecar_cpu=side_cpu, serving_cpu=app_cpu, rss=rss)
    return section
