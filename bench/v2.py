"""Part 14: Open Inference Protocol (V2) single-prediction throughput against /api/v1/predict.

One server (the deployment: granian front, 2 workers, seed layout), both paths measured in
interleaved rounds with wrk in the same run; the ratio is taken within each round, then the
median of the rounds. The V2 body is one tensor per feature, JSON, as a V2 client sends one row.
"""

from __future__ import annotations

import json
from pathlib import Path

import requests

from devkit.load import v2_body
from devkit.snapshots import build_snapshot, seed_models

from . import models
from .common import VALID, Processes, answered, median, wrk
from .report import Section
from .servers import serving

ROUNDS = 5
SECONDS = 5
CONNECTIONS = 8
GOAL = 0.9  # V2 within 10% of /api/v1/predict
# name -> (what it is, path, body)
RUNS = {
    "v1": ("/api/v1/predict, one instance", "/api/v1/predict", json.dumps(VALID)),
    "v2": ("/v2/models/{name}/infer, one tensor per feature",
           "/v2/models/{name}/infer", json.dumps(v2_body(VALID))),
}


def run(work: Path) -> Section:
    """Start one server, measure both paths in interleaved rounds, judge the ratio."""
    section = Section("14. Open Inference Protocol (V2) throughput")
    root = work / "seed-root"
    build_snapshot(root, seed_models(models.trained().seed), "1.0.0")
    runs: dict[str, list[dict]] = {name: [] for name in RUNS}
    with Processes(work) as processes:
        server = serving(processes, "front2", root)
        # The V2 name is the registry model holding the classifier (the seed's: diamonds-model).
        primary = requests.get(server.url + "/api/v1/model", timeout=10).json()["primary"]
        urls = {name: server.url + path.format(name=primary)
                for name, (_, path, _) in RUNS.items()}
        for name, (_, _, body) in RUNS.items():  # warm both paths once
            wrk(urls[name], 1, CONNECTIONS, body, work)
        for _ in range(ROUNDS):
            for name, (_, _, body) in RUNS.items():
                runs[name].append(wrk(urls[name], SECONDS, CONNECTIONS, body, work))
    section.table(f"wrk, {CONNECTIONS} connections, {SECONDS} s x {ROUNDS} interleaved rounds "
                  "(medians), one server", ["path", "req/s", "p50 ms", "p99 ms", "failed"],
                  [[label, median([r["rps"] for r in runs[name]]),
                    median([r["p50_ms"] for r in runs[name]]),
                    median([r["p99_ms"] for r in runs[name]]),
                    sum(r["socket_errors"] + r["non_2xx"] for r in runs[name])]
                   for name, (label, _, _) in RUNS.items()])
    in_process = _in_process(root, primary)
    section.table("CPU per request in-process (the app called as WSGI, no sockets; median of "
                  f"{ROUNDS} interleaved rounds)", ["path", "CPU us per call"],
                  [[RUNS[name][0], us] for name, us in in_process.items()])
    ratio = median([v2["rps"] / v1["rps"] for v1, v2 in zip(runs["v1"], runs["v2"],
                                                             strict=True)])
    section.target("V2 single-prediction throughput vs /api/v1/predict (same server)",
                   f"{ratio:.0%}", f">= {GOAL:.0%}", ratio >= GOAL,
                   evidence={"answers, v1": answered(runs["v1"]),
                             "answers, v2": answered(runs["v2"])})
    section.figures.update(v2_vs_v1=ratio, runs=runs, in_process_us=in_process)
    section.notes.append(
        f"The V2 body is {len(RUNS['v2'][2])} bytes against {len(RUNS['v1'][2])} for /api/v1 "
        "(nine tensors with name, shape and datatype each); both go through the same checks "
        "(serving.inputs.checks), roles, metrics and MPM. **Where the difference goes** "
        f"(in process, this run: {in_process['v1']:.0f} us for /api/v1, {in_process['v2']:.0f} "
        "us for V2): decoding nine typed tensors (msgspec, about 2 us) and reading them into "
        "the row (about 3 us, one pass checking name, shape, datatype and type) against "
        "/api/v1's 4 us decode; three output tensors (about 3 us: the per-class table of a "
        "row is rounded in Python, numpy's set-up cost 5 us more) and their larger answer; "
        "routing a path holding the model's name. Over HTTP the larger body and answer cost "
        "the front and the client a little more. Cut for this target: the class table (5 -> 1 us), "
        "the schema's names made once (not per request), the tensor checks by datatype "
        "looked up once per schema.")
    return section


def _in_process(root: Path, primary: str) -> dict[str, float]:
    """CPU microseconds per WSGI call of each path on the same seed layout, interleaved."""
    from .profiling import _ours_app, cpu_per_call, wsgi_call

    app = _ours_app(root)
    calls = {name: wsgi_call(app, path.format(name=primary), body.encode())
             for name, (_, path, body) in RUNS.items()}
    try:
        rounds = [{name: cpu_per_call(call, 1000, rounds=1) for name, call in calls.items()}
                  for _ in range(ROUNDS)]
    finally:
        app.extensions["serving.swap.holder"].stop()
    return {name: median([r[name] for r in rounds]) for name in calls}
