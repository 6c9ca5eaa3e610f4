"""Part 1: single-prediction JSON throughput and latency, ours against the textbook app.

All servers run at once and are measured in interleaved rounds with wrk (1 thread, fixed
connections, fixed duration); each ratio is taken within a round, then the median of the rounds.
"""

from __future__ import annotations

import json
from pathlib import Path

from devkit.snapshots import build_snapshot, seed_models

from . import models, profiling
from .common import VALID, Processes, answered, median, wrk
from .report import Section
from .servers import serving, textbook

ROUNDS = 5
SECONDS = 5
CONNECTIONS = 8
BODY = json.dumps(VALID)
PREDICT, HEALTH = "/api/v1/predict", "/healthz"

# name -> (what it is, server kind, path, with a body)
RUNS = {
    "textbook_flask": ("textbook app, `flask run` (threaded dev server)", "tb-flask",
                       "/predict", True),
    "textbook_gunicorn": ("textbook app, gunicorn 2 sync workers", "tb-gunicorn", "/predict",
                          True),
    "ours": ("ours as deployed: granian front, 2 workers, seed layout (same files)",
             "front2", PREDICT, True),
    "ours_ceiling": ("ours, no-model endpoint (GET /healthz), same server", "front2", HEALTH,
                     False),
    "ours_pipeline": ("ours, 2 workers, our layout (pipeline.skops)", "pipe2", PREDICT, True),
    "front4": ("ours, 4 workers", "front4", PREDICT, True),
    "front4_ceiling": ("ours, 4 workers, GET /healthz", "front4", HEALTH, False),
}


def _start_all(processes: Processes, work: Path) -> dict:
    trained = models.trained()
    seed_root, pipe_root = work / "seed-root", work / "pipe-root"
    build_snapshot(seed_root, seed_models(trained.seed), "1.0.0")
    build_snapshot(pipe_root, {models.CLASSIFIER: trained.pipeline}, "1.0.0")
    return {
        "tb-flask": textbook(processes, "tb-flask", trained.seed, "flask"),
        "tb-gunicorn": textbook(processes, "tb-gunicorn", trained.seed, "gunicorn"),
        "front2": serving(processes, "front2", seed_root),
        "pipe2": serving(processes, "pipe2", pipe_root),
        "front4": serving(processes, "front4", seed_root, workers=4),
    }


def _measure(servers: dict, work: Path) -> dict[str, list[dict]]:
    runs: dict[str, list[dict]] = {name: [] for name in RUNS}
    for _, kind, path, post in RUNS.values():  # warm every server and path once
        wrk(servers[kind].url + path, 1, CONNECTIONS, BODY if post else None, work)
    for _ in range(ROUNDS):
        for name, (_, kind, path, post) in RUNS.items():
            runs[name].append(wrk(servers[kind].url + path, SECONDS, CONNECTIONS,
                                  BODY if post else None, work))
    return runs


def _ratio(runs: dict, a: str, b: str, key: str = "rps") -> float:
    """The median over rounds of a/b, each round's figures side by side."""
    return median([x[key] / y[key] for x, y in zip(runs[a], runs[b], strict=True)])


def run(work: Path) -> Section:
    """Start every server, measure in rounds, profile ours under load, judge the targets."""
    section = Section("1. Single-prediction throughput and latency")
    with Processes(work) as processes:
        servers = _start_all(processes, work)
        runs = _measure(servers, work)
        profile = profiling.under_load(servers["front2"], PREDICT, BODY, work)
    rows = []
    for name, (label, *_rest) in RUNS.items():
        got = runs[name]
        rows.append([label, median([r["rps"] for r in got]), median([r["p50_ms"] for r in got]),
                     median([r["p99_ms"] for r in got]),
                     sum(r["socket_errors"] + r["non_2xx"] for r in got)])
    section.table(f"wrk, {CONNECTIONS} connections, {SECONDS} s x {ROUNDS} interleaved rounds "
                  "(medians)", ["server", "req/s", "p50 ms", "p99 ms", "failed"], rows)
    _judge(section, runs)
    section.figures["runs"] = runs
    profiling.report(section, profile)
    profiling.in_process(section)
    section.notes.append(_workers_note(section.figures))
    return section


def _workers_note(figures: dict) -> str:
    """How many workers the deployment runs and why, with this run's ratio."""
    return (
        "**Workers.** The deployment runs 2 workers, one per core (`WEB_CONCURRENCY=2` in the "
        f"ConfigMap). In this run 4 workers gave {figures['front4_vs_front2']:.2f}x its "
        "throughput (median of per-round ratios). A worker runs one request's Python at a "
        "time and its HTTP in Rust, so a core is kept busy by one worker; more processes only "
        "add memory. **Where the time goes:** see the in-process table: Flask/werkzeug's own "
        "request handling costs about what the no-model endpoint costs; the model and our "
        "request code are the rest.")


def _judge(section: Section, runs: dict) -> None:
    vs_flask = _ratio(runs, "ours", "textbook_flask")
    vs_gunicorn = _ratio(runs, "ours", "textbook_gunicorn")
    p99 = _ratio(runs, "ours", "textbook_flask", "p99_ms")
    ceiling = _ratio(runs, "ours", "ours_ceiling")
    ours, flask = answered(runs["ours"]), answered(runs["textbook_flask"])
    section.target("throughput vs textbook `flask run`", f"{vs_flask:.1f}x", ">= 10x",
                   vs_flask >= 10, evidence={"answers, ours": ours, "answers, textbook": flask})
    section.target("throughput vs textbook code under gunicorn (2 sync)", f"{vs_gunicorn:.1f}x",
                   ">= 3x", vs_gunicorn >= 3,
                   evidence={"answers, ours": ours,
                             "answers, gunicorn": answered(runs["textbook_gunicorn"])})
    section.target("p99 vs textbook `flask run` p99", f"{p99:.2f}x", "<= 0.33x", p99 <= 1 / 3,
                   evidence={"answers, ours": ours, "answers, textbook": flask})
    section.target("throughput vs no-model endpoint (same server)", f"{ceiling:.0%}", ">= 40%",
                   ceiling >= 0.4, evidence={"answers, ours": ours,
                                             "answers, no-model": answered(runs["ours_ceiling"])})
    section.figures.update(vs_flask=vs_flask, vs_gunicorn=vs_gunicorn, p99_ratio=p99,
                           vs_ceiling=ceiling,
                           front4_vs_front2=_ratio(runs, "front4", "ours"))
