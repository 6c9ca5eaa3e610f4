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

OWN = {"gold": "binary", "cut": "five classes", "price": "regressor"}  # own-model kinds

# name -> (what it is, server kind, path, the body's name: None for a GET)
RUNS = {
    "textbook_flask": ("textbook app, `flask run` (threaded dev server)", "tb-flask",
                       "/predict", "diamonds"),
    "textbook_gunicorn": ("textbook app, gunicorn 2 sync workers", "tb-gunicorn", "/predict",
                          "diamonds"),
    "ours": ("ours as deployed: granian front, 2 workers, seed layout (same files)",
             "front2", PREDICT, "diamonds"),
    "ours_ceiling": ("ours, no-model endpoint (GET /healthz), same server", "front2", HEALTH,
                     None),
    "ours_pipeline": ("ours, 2 workers, our layout (pipeline.skops)", "pipe2", PREDICT,
                      "diamonds"),
    "front4": ("ours, 4 workers", "front4", PREDICT, "diamonds"),
    "front4_ceiling": ("ours, 4 workers, GET /healthz", "front4", HEALTH, None),
    **{f"own_{kind}": (f"ours, 2 workers, a team's own model: {what} (`{kind}`, "
                       "devkit/own_models.py)", f"own-{kind}", PREDICT, kind)
       for kind, what in OWN.items()},
}


def _start_all(processes: Processes, work: Path) -> tuple[dict, dict[str, str]]:
    """Every server of the runs, and the body each run sends by name."""
    trained = models.trained()
    seed_root, pipe_root = work / "seed-root", work / "pipe-root"
    build_snapshot(seed_root, seed_models(trained.seed), "1.0.0")
    build_snapshot(pipe_root, {models.CLASSIFIER: trained.pipeline}, "1.0.0")
    servers = {
        "tb-flask": textbook(processes, "tb-flask", trained.seed, "flask"),
        "tb-gunicorn": textbook(processes, "tb-gunicorn", trained.seed, "gunicorn"),
        "front2": serving(processes, "front2", seed_root),
        "pipe2": serving(processes, "pipe2", pipe_root),
        "front4": serving(processes, "front4", seed_root, workers=4),
    }
    bodies = {"diamonds": BODY}
    for kind, own in _own_models(work).items():
        root = work / f"own-{kind}-root"
        build_snapshot(root, {own.name: own.folder}, "1.0.0")
        servers[f"own-{kind}"] = serving(processes, f"own-{kind}", root)
        bodies[kind] = json.dumps(own.instance())
    return servers, bodies


def _own_models(work: Path) -> dict:
    """The binary, five-class and regression models the own-model tests train (small)."""
    from devkit.own_models import bundled_sample, train_and_describe

    folder = work / "own-models"
    folder.mkdir(exist_ok=True)
    frame = bundled_sample()
    return {kind: train_and_describe(kind, frame, folder) for kind in OWN}


def _measure(servers: dict, bodies: dict[str, str], work: Path) -> dict[str, list[dict]]:
    runs: dict[str, list[dict]] = {name: [] for name in RUNS}
    for _, kind, path, body in RUNS.values():  # warm every server and path once
        wrk(servers[kind].url + path, 1, CONNECTIONS, bodies.get(body), work)
    for _ in range(ROUNDS):
        for name, (_, kind, path, body) in RUNS.items():
            runs[name].append(wrk(servers[kind].url + path, SECONDS, CONNECTIONS,
                                  bodies.get(body), work))
    return runs


def _ratio(runs: dict, a: str, b: str, key: str = "rps") -> float:
    """The median over rounds of a/b, each round's figures side by side."""
    return median([x[key] / y[key] for x, y in zip(runs[a], runs[b], strict=True)])


def run(work: Path) -> Section:
    """Start every server, measure in rounds, profile ours under load, judge the targets."""
    section = Section("1. Single-prediction throughput and latency")
    with Processes(work) as processes:
        servers, bodies = _start_all(processes, work)
        runs = _measure(servers, bodies, work)
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
    section.target("throughput vs textbook `flask run`", f"{vs_flask:.1f}x", ">= 40x",
                   vs_flask >= 40, evidence={"answers, ours": ours, "answers, textbook": flask})
    section.target("throughput vs textbook code under gunicorn (2 sync)", f"{vs_gunicorn:.1f}x",
                   ">= 3x", vs_gunicorn >= 3,
                   evidence={"answers, ours": ours,
                             "answers, gunicorn": answered(runs["textbook_gunicorn"])})
    section.target("p99 vs textbook `flask run` p99", f"{p99:.2f}x", "<= 0.33x", p99 <= 1 / 3,
                   evidence={"answers, ours": ours, "answers, textbook": flask})
    section.target("throughput vs no-model endpoint (same server)", f"{ceiling:.0%}", ">= 80%",
                   ceiling >= 0.8, evidence={"answers, ours": ours,
                                             "answers, no-model": answered(runs["ours_ceiling"])})
    section.figures.update(vs_flask=vs_flask, vs_gunicorn=vs_gunicorn, p99_ratio=p99,
                           vs_ceiling=ceiling,
                           front4_vs_front2=_ratio(runs, "front4", "ours"),
                           **{f"own_{kind}_vs_ours": _ratio(runs, f"own_{kind}", "ours")
                              for kind in OWN})
