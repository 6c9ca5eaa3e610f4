"""Part 3: hot swap under load: p99 in steady windows against windows holding a publication.

wrk loads ours (2 sync workers, as deployed) in back-to-back windows of 5 s. In every second
window, 1 s in, a new snapshot is published the way the sidecar does it: staged, validated by
serving (POST /-/validate), `current` renamed, POST /-/reload. The two models alternate, so
every publication is a real change. Failed = non-2xx answers + socket errors. Beside wrk, in
steady and swap windows alike, a probe (bench/probe.py) sends one request at a time on new
connections and notes when each answer came: the longest gap between answers and the worst
request show a stall that a p99 over thousands of closed-loop requests would hide.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import requests

from devkit.sessions import spreading_session
from devkit.snapshots import build_snapshot
from registry_sync.store.publish import publish

from . import models
from .common import TOKEN, VALID, Processes, answered, median, wrk
from .probe import Probe
from .report import Section
from .servers import serving

ROUNDS = 4
WINDOW = 5
CONNECTIONS = 8
AUTH = {"Authorization": f"Bearer {TOKEN}"}
MAX_GAP_MS = 1000.0


def _publish(server, root: Path, folder: Path, version: str, timings: dict) -> None:
    """Stage, validate, publish and reload, as the sidecar does; note how long each took."""
    started = time.perf_counter()
    snapshot = build_snapshot(root, {models.CLASSIFIER: folder}, version, publish=False)
    admin = server.extra["admin"]
    answer = requests.post(f"{admin}/-/validate", json={"snapshot": snapshot}, headers=AUTH,
                           timeout=60)
    timings["validate_status"] = answer.status_code
    publish(root, snapshot)
    requests.post(f"{admin}/-/reload", json={"snapshot": snapshot}, headers=AUTH, timeout=60)
    timings["seconds"] = time.perf_counter() - started


def _served_versions(server, count: int = 20) -> set[str]:
    """Versions answered by `count` requests, each on a new connection (so any worker answers)."""
    with spreading_session() as session:
        return {session.post(server.url + "/api/v1/predict", json=VALID, timeout=10)
                .headers.get("X-Model-Version", "?") for _ in range(count)}


def run(work: Path) -> Section:
    """Alternate steady and swap windows; compare their p99 and count failures."""
    section = Section("3. Hot swap under load")
    trained = models.trained()
    folders = [trained.alternative, trained.pipeline]
    root = work / "root"
    build_snapshot(root, {models.CLASSIFIER: trained.pipeline}, "1.0.0")
    body, url_path = json.dumps(VALID), "/api/v1/predict"
    steady, swaps, converged = [], [], []
    with Processes(work) as processes:
        server = serving(processes, "serving", root)
        wrk(server.url + url_path, 1, CONNECTIONS, body, work)
        for i in range(ROUNDS):
            with Probe(server.url, url_path, body.encode()) as probe:  # the same load as swaps
                steady.append(wrk(server.url + url_path, WINDOW, CONNECTIONS, body, work))
            steady[-1]["probe"] = probe.result().__dict__
            version, timings = f"2.0.{i}", {}
            timer = threading.Timer(1.0, _publish, (server, root, folders[i % 2], version,
                                                    timings))
            timer.start()
            with Probe(server.url, url_path, body.encode()) as probe:
                swaps.append({**wrk(server.url + url_path, WINDOW, CONNECTIONS, body, work),
                              "publish_s": 0.0})
            timer.join()
            swaps[-1]["probe"] = probe.result().__dict__
            swaps[-1].update(publish_s=timings.get("seconds", float("nan")),
                             validate=timings.get("validate_status"))
            converged.append(_served_versions(server) == {version})
    ratio = median([s["p99_ms"] / t["p99_ms"] for s, t in zip(swaps, steady, strict=True)])
    rows = [[f"round {i + 1}", t["rps"], t["p99_ms"], t["probe"]["longest_gap_ms"], s["rps"],
             s["p99_ms"], s["max_ms"],
             s["probe"]["answers"], s["probe"]["worst_ms"], s["probe"]["longest_gap_ms"],
             s["non_2xx"] + s["socket_errors"] + s["probe"]["failed"], round(s["publish_s"], 3),
             "yes" if ok else "NO"]
            for i, (t, s, ok) in enumerate(zip(steady, swaps, converged, strict=True))]
    section.table(f"wrk, {CONNECTIONS} connections, {WINDOW} s windows; publication 1 s into "
                  "each swap window; beside wrk in every window, a probe: one request at a "
                  "time on new connections", ["", "steady req/s", "steady p99 ms",
                                              "steady probe longest gap ms", "swap req/s",
                                              "swap p99 ms", "swap worst ms (wrk)",
                                              "probe answers", "probe worst ms",
                                              "probe longest gap ms", "failed", "publish s",
                                              "all workers on new version"], rows)
    _judge(section, steady, swaps, converged, ratio)
    section.figures.update(steady=steady, swaps=swaps, p99_ratio=ratio)
    return section


def _judge(section, steady: list[dict], swaps: list[dict], converged: list[bool],
           ratio: float) -> None:
    """The targets, each resting on the answers counted in the windows it judges."""
    failed = sum(r["non_2xx"] + r["socket_errors"] + r["probe"]["failed"]
                 for r in swaps + steady)
    probed = sum(s["probe"]["answers"] for s in swaps)
    during = {"answers in swap windows": answered(swaps), "probe answers": probed}
    section.target("failed requests during swaps", str(failed), "0", failed == 0,
                   evidence={**during, "swaps": len(swaps)})
    section.target("p99 in a swap window vs steady", f"{ratio:.2f}x", "<= 3x", ratio <= 3,
                   evidence={**during, "answers in steady windows": answered(steady)})
    gap = max((s["probe"]["longest_gap_ms"] for s in swaps), default=float("nan"))
    worst = max((s["max_ms"] for s in swaps), default=float("nan"))
    section.target("longest gap between answers during a swap (probe)",
                   f"{gap:.0f} ms (worst request: {worst:.0f} ms)", f"<= {MAX_GAP_MS:.0f} ms",
                   gap <= MAX_GAP_MS, evidence=during)
    section.target("every worker serves the new version after each swap",
                   f"{sum(converged)}/{len(converged)}", "all", all(converged),
                   evidence={"swaps": len(converged)})
