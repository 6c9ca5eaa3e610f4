"""Part 7: idle cost: requests per poll, bytes when nothing changed, CPU and RSS at rest.

The whole system runs (local registry answering `details` in the SDK's shape, sidecar polling
every INTERVAL seconds without a candidate status, serving with 2 workers) with nothing changing
for IDLE seconds after the first sync; then the registry and a sidecar alone with a candidate
status (Staging, the default) for the request count with one. The registry counts the requests
it receives; the sidecar's metrics count polls and downloaded bytes. A refresh of the cached
facts (item/details + allowed statuses, every 30 polls) may fall in a window: the expected
counts allow for one.
"""

from __future__ import annotations

import time
from pathlib import Path

import requests

from . import models
from .common import Processes, cpu_seconds, mib
from .report import Section
from .servers import metric, pod, registry, sidecar

INTERVAL = 2.0
IDLE = 30.0


def _polls(side) -> tuple[float, float]:
    text = requests.get(side.url + "/metrics", timeout=10).text
    return (metric(text, "registry_sync_attempts_total"),
            metric(text, "registry_sync_downloaded_bytes_total"))


def run(work: Path) -> Section:
    """Idle without a candidate status (requests, bytes, CPU, RSS), then requests with one."""
    section = Section("7. Idle cost")
    without = _whole_pod(section, work / "pod")
    with_candidate = _candidate(section, work / "candidate")
    section.figures.update(requests_per_poll={"no candidate": without,
                                              "Staging": with_candidate})
    return section


def _within(total: int, polls: float, per_poll: int) -> bool:
    """One poll of slack at each end, and one refresh (2 requests) in the window."""
    return polls > 0 and -per_poll <= total - per_poll * polls <= per_poll + 2


def _requests(section: Section, counts: dict, polls: float, statuses: int, what: str) -> float:
    """The requests-per-poll target; the figure."""
    per_poll = counts["total"] / polls if polls else float("nan")
    section.target(f"registry requests per poll per model, {what}", f"{per_poll:.2f}",
                   f"{statuses} (+ a refresh every 30 polls)",
                   _within(counts["total"], polls, statuses),
                   evidence={"polls": polls, "registry requests": counts["total"]})
    return per_poll


def _by_path(counts: dict) -> str:
    return ", ".join(f"{k}: {v}" for k, v in counts["by_path"].items())


def _candidate(section: Section, work: Path) -> float:
    """The registry and a sidecar following Production and Staging: requests per poll."""
    trained = models.trained()
    with Processes(work) as processes:
        handle = registry(processes)
        handle.register_folder(models.CLASSIFIER, "1.0.0", trained.pipeline, status="Production")
        side = sidecar(processes, handle, work / "models", models.CLASSIFIER,
                       SYNC_INTERVAL=str(INTERVAL), REGISTRY_CANDIDATE_STATUS="Staging")
        time.sleep(3 * INTERVAL)  # the first sync and a poll after it
        handle.reset_request_counts()
        polls_before, _ = _polls(side)
        time.sleep(IDLE)
        polls = _polls(side)[0] - polls_before
        counts = handle.request_counts()
    section.table(f"{IDLE:g} s idle, SYNC_INTERVAL={INTERVAL:g} s, 1 registry model, candidate "
                  "status Staging", ["figure", "value"],
                  [["polls", int(polls)], ["registry requests", counts["total"]],
                   ["registry requests by path", _by_path(counts)]])
    return _requests(section, counts, polls, 2, "with candidate status Staging")


def _whole_pod(section: Section, work: Path) -> float:
    """Start everything, wait for the first sync, then watch it idle."""
    trained = models.trained()
    root = work / "models"
    with Processes(work) as processes:
        handle, app, side = pod(processes, root, models.CLASSIFIER, trained.pipeline, INTERVAL,
                                REGISTRY_CANDIDATE_STATUS="")
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
    polls, downloaded = polls_after - polls_before, bytes_after - bytes_before
    section.table(f"{IDLE:g} s idle, SYNC_INTERVAL={INTERVAL:g} s, 1 registry model, no "
                  "candidate status", ["figure", "value"],
                  [["polls", int(polls)], ["registry requests", counts["total"]],
                   ["registry requests by path", _by_path(counts)],
                   ["bytes downloaded", int(downloaded)],
                   ["sidecar CPU, % of a core", round(side_cpu * 100, 2)],
                   ["serving CPU (master + 2 workers), % of a core", round(app_cpu * 100, 2)],
                   *[[f"RSS at rest: {k}, MiB", mib(v)] for k, v in rss.items()]])
    per_poll = _requests(section, counts, polls, 1, "no candidate status")
    section.target("bytes downloaded when nothing changed", str(int(downloaded)), "0",
                   downloaded == 0, evidence={"polls": polls})
    section.target("sidecar CPU when idle", f"{side_cpu:.2%} of a core", "< 1%", side_cpu < 0.01,
                   evidence={"sidecar processes": len(side_procs), "seconds idle": elapsed})
    section.notes.append(
        "RSS counts shared pages in every process: the serving master imports the libraries "
        "before forking its workers (serving/swap/prefork.py), so most of each worker's RSS "
        "is shared with the master (see part 6 for USS and PSS).")
    section.figures.update(polls=polls, counts=counts, downloaded=downloaded,
                           sidecar_cpu=side_cpu, serving_cpu=app_cpu, rss=rss)
    return per_poll
