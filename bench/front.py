"""Part 8: the serving front: seven HTTP servers side by side, with and without slow clients.

The same app and snapshot under: gunicorn sync workers (deployed before this part existed),
gunicorn behind nginx in the pod (the front before granian), gunicorn with gevent workers,
granian's own WSGI interface, and the chosen front: granian with the RSGI adapter that reads
each body before the app runs (`python -m serving.front`), also without its connection balance
(FRONT_BALANCE=false: kept-alive connections stay where the kernel's hash put them) and without
pinning its workers to a CPU each (FRONT_PIN_WORKERS=false; auto pins them on 2 CPUs).
Each gets a normal wrk load alone and then with 200 slow connections held (headers trickled,
bodies trickled, idle after connect: devkit.slow_clients); then single-prediction
throughput in interleaved rounds, and memory (PSS of every process of the server).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import psutil

from devkit.slow_clients import KINDS, SlowClients
from devkit.snapshots import build_snapshot, seed_models

from . import models
from .common import VALID, Process, Processes, answered, median, mib, wrk
from .report import Section
from .servers import granian_wsgi, nginx_gunicorn, serving

BODY = json.dumps(VALID)
PREDICT = "/api/v1/predict"
SLOW = 200
LOAD_SECONDS, LOAD_CONNECTIONS = 6, 4
HOLD_SECONDS = 14  # past the 10 s header deadline of nginx and granian
ROUNDS, SECONDS, CONNECTIONS = 3, 6, 8
# More rounds of the two the targets compare: a p99 ratio near 1 needs more than three pairs.
TARGET_ROUNDS = 6
CANDIDATES = {
    "sync": "gunicorn, 2 sync workers (before)",
    "nginx": "nginx -> gunicorn, 2 sync workers",
    "gevent": "gunicorn, 2 gevent workers",
    "granian_wsgi": "granian WSGI, 2 workers x 1 thread",
    "front_unbalanced": "granian RSGI, 2 workers, FRONT_BALANCE=false",
    "front_unpinned": "granian RSGI, 2 workers, FRONT_PIN_WORKERS=false",
    "front": "granian RSGI, 2 workers (chosen: serving.front)",
}
CHOSEN = "front"


def _start(processes: Processes, kind: str, root: Path) -> Process:
    """One candidate on free loopback ports, once it answers /readyz."""
    if kind == "granian_wsgi":
        return granian_wsgi(processes, kind, root)
    if kind == "nginx":
        return nginx_gunicorn(processes, kind, root)
    if kind == "front_unbalanced":
        return serving(processes, kind, root, FRONT_BALANCE="false")
    if kind == "front_unpinned":
        return serving(processes, kind, root, FRONT_PIN_WORKERS="false")
    options = ("--worker-class", "gevent", "--worker-connections", "1000") \
        if kind == "gevent" else ()
    return serving(processes, kind, root, front=kind == CHOSEN, options=options)


def _failed(result: dict) -> int:
    return int(result["socket_errors"] + result["non_2xx"])


def _slow_round(server: Process, work: Path) -> dict:
    """The normal load alone, then with SLOW slow connections held; who closed them, when."""
    alone = wrk(server.url + PREDICT, LOAD_SECONDS, LOAD_CONNECTIONS, BODY, work)
    port = int(server.url.rpartition(":")[2])
    with SlowClients("127.0.0.1", port, count=SLOW, seconds=HOLD_SECONDS + 10) as slow:
        opened = time.monotonic()
        held = wrk(server.url + PREDICT, LOAD_SECONDS, LOAD_CONNECTIONS, BODY, work)
        time.sleep(max(0.0, HOLD_SECONDS - (time.monotonic() - opened)))
        closed = {kind: slow.closed_after(kind) for kind in KINDS}
    return {"alone": alone, "held": held, "closed": {k: len(v) for k, v in closed.items()},
            "closed_after": {k: median(v) for k, v in closed.items()}}


def _pss(server: Process) -> float:
    """PSS of the server's processes (nginx's upstream gunicorn included)."""
    total = 0
    upstream = server.extra.get("upstream")
    for proc in [*server.family(), *(upstream.family() if upstream else [])]:
        try:
            total += proc.memory_full_info().pss
        except psutil.Error:
            continue
    return total


def run(work: Path) -> Section:
    """Start the fronts, measure slow clients, throughput and memory, side by side."""
    section = Section("8. Serving front: slow clients, throughput, memory")
    trained = models.trained()
    root = work / "root"
    build_snapshot(root, seed_models(trained.seed), "1.0.0")
    slow, rounds, memory = {}, {k: [] for k in CANDIDATES}, {}
    with Processes(work) as processes:
        servers = {kind: _start(processes, kind, root) for kind in CANDIDATES}
        for server in servers.values():
            wrk(server.url + PREDICT, 1, CONNECTIONS, BODY, work)
        for _ in range(ROUNDS):
            for kind, server in servers.items():
                rounds[kind].append(wrk(server.url + PREDICT, SECONDS, CONNECTIONS, BODY, work))
        pairs = {kind: list(rounds[kind]) for kind in ("sync", CHOSEN)}
        for _ in range(TARGET_ROUNDS):
            for kind, found in pairs.items():
                found.append(wrk(servers[kind].url + PREDICT, SECONDS, CONNECTIONS, BODY, work))
        memory = {kind: _pss(server) for kind, server in servers.items()}
        for kind, server in servers.items():
            slow[kind] = _slow_round(server, work)
    _report(section, slow, rounds, pairs, memory)
    return section


def _ratio(rounds: dict, a: str, b: str, key: str = "rps") -> float:
    return median([x[key] / y[key] for x, y in zip(rounds[a], rounds[b], strict=True)])


def _report(section: Section, slow: dict, rounds: dict, pairs: dict, memory: dict) -> None:
    rows = []
    for kind, label in CANDIDATES.items():
        s = slow[kind]
        rows.append([label, s["alone"]["requests"], _failed(s["alone"]), s["alone"]["p99_ms"],
                     s["held"]["requests"], _failed(s["held"]), s["held"]["p99_ms"],
                     " / ".join(f"{s['closed'][k]} ({s['closed_after'][k]:.1f} s)"
                                for k in KINDS)])
    section.table(f"normal load (wrk, {LOAD_CONNECTIONS} connections, {LOAD_SECONDS} s) alone, "
                  f"then with {SLOW} slow connections held; slow ones closed by the server "
                  f"within {HOLD_SECONDS} s (median seconds to the close)",
                  ["front", "answered alone", "failed", "p99 ms", "answered held", "failed",
                   "p99 ms", "closed: headers / bodies / idle"], rows)
    rows = [[label, median([r["rps"] for r in rounds[kind]]),
             median([r["p50_ms"] for r in rounds[kind]]),
             median([r["p99_ms"] for r in rounds[kind]]),
             f"{_ratio(rounds, kind, 'sync'):.2f}x", sum(map(_failed, rounds[kind])),
             mib(memory[kind])] for kind, label in CANDIDATES.items()]
    section.table(f"single prediction, wrk {CONNECTIONS} connections, {SECONDS} s x {ROUNDS} "
                  "interleaved rounds (medians); memory: PSS of every process after the load",
                  ["front", "req/s", "p50 ms", "p99 ms", "vs before", "failed", "PSS MiB"], rows)
    chosen, before = slow[CHOSEN], slow["sync"]
    p99_slow = chosen["held"]["p99_ms"] / chosen["alone"]["p99_ms"]
    held = {"answers held": answered([chosen["held"]]),
            "answers alone": answered([chosen["alone"]])}
    paired = {"answers, ours": answered(pairs[CHOSEN]), "answers, before": answered(pairs["sync"])}
    section.target("failed normal requests with 200 slow connections held",
                   str(_failed(chosen["held"])), "0", _failed(chosen["held"]) == 0,
                   evidence=held)
    section.target("p99 with slow connections held vs without", f"{p99_slow:.2f}x", "<= 2x",
                   p99_slow <= 2, evidence=held)
    speed = _ratio(pairs, CHOSEN, "sync")
    section.target("single-prediction throughput vs before (same run)", f"{speed:.2f}x",
                   ">= 1.3x", speed >= 1.3, evidence=paired)
    p99 = _ratio(pairs, CHOSEN, "sync", "p99_ms")
    section.target("single-prediction p99 vs before (same run)", f"{p99:.2f}x", "<= 1x",
                   p99 <= 1, evidence=paired)
    section.figures.update(slow=slow, rounds=rounds, pairs=pairs, memory=memory,
                           before_failed_held=_failed(before["held"]))
    section.notes.append(
        f"**Reading it.** \"answered held\" is what the normal load got while the slow "
        f"connections were held: gunicorn alone answered {before['held']['requests']} (its two "
        "workers sit on slow clients; wrk's 5 s timeouts are not always reported as errors, "
        "so the count is the measure). Slow bodies trickle 2 bytes/s: the chosen front ends "
        "each at FRONT_BODY_TIMEOUT (10 s, whole body) with a 408, nginx's between-reads body "
        "deadline does not cut them (each holds an nginx connection, never a worker), and "
        "under granian's WSGI interface each holds a worker's one Python thread, which is why "
        "the front reads bodies on the event loop (RSGI). Hot swaps through the chosen front "
        "are part 3. Ratios are side by side in one run; the two single-prediction targets "
        f"are medians of {ROUNDS + TARGET_ROUNDS} paired rounds (the {ROUNDS} above, then "
        f"{TARGET_ROUNDS} more of the chosen front and the one before, interleaved). The "
        "decision and its reasons are in docs/serving.md, \"The front\".")
