"""Part 10: replicas: Comet load and downloads against the number of replicas, leader failover.

For each N (BENCH_REPLICAS, default 1,5,10,20), N sidecars run as real processes, each with its
own MODEL_ROOT and ops port, sharing the local registry and the Kubernetes API stand-in
(devkit/fake_kube_api.py) with leader election on. Measured: the poll's requests an hour seen by
the registry (`items?status=`, one per followed status: Production and the default candidate
status Staging) over WINDOW seconds of idle polling; download bytes per promotion (what the sidecars
counted from Comet, and from peers); promotion-to-all-published time per replica; and, after a
SIGKILL of the leader, the time until another replica's poll reaches the registry.
"Serving" here is `current` published on every replica: serving processes follow `current`
within MODEL_CHECK_INTERVAL (0.2 s), and N gunicorns do not fit on this machine beside N sidecars.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import requests

from devkit.cluster import holder, replica_env
from devkit.fake_kube_api import FakeApi, Server
from devkit.processes import free_port, published_versions

from .common import Process, Processes, answers, median, python, wait_until
from .report import Section
from .servers import metric, registry, sidecar_env

INTERVAL = 2.0
WINDOW = 30.0
MODEL_BYTES = 2 * 1024 * 1024
POLL = "/api/rest/v2/registry-model/items"  # what a poll asks (finder.py)
STATUSES_FOLLOWED = 2  # Production, and the candidate status (Staging by default)
LEASE, RENEW, RETRY = 6.0, 4.0, 1.0
ELECTION = {"LEADER_ELECTION_LEASE_DURATION": str(LEASE),
            "LEADER_ELECTION_RENEW_DEADLINE": str(RENEW),
            "LEADER_ELECTION_RETRY_PERIOD": str(RETRY)}


def _counts() -> tuple[int, ...]:
    raw = os.environ.get("BENCH_REPLICAS", "1,5,10,20")
    return tuple(int(n) for n in raw.split(",") if n.strip())


def _start(processes: Processes, handle, api_url: str, work: Path, model: str,
           index: int) -> Process:
    port = free_port()
    work.mkdir(parents=True, exist_ok=True)
    token = work / "sa-token"
    token.write_text("bench-service-account-token\n")
    environ = sidecar_env(handle, work / f"pod-{index}", model, SYNC_INTERVAL=str(INTERVAL),
                          **replica_env(api_url, token, index, **ELECTION))
    environ.update(SIDECAR_LISTEN=f"127.0.0.1:{port}", LOG_LEVEL="warning")
    process = processes.start(f"pod-{index}", [python(), "-m", "registry_sync.cli", "run"],
                              environ)
    process.url = f"http://127.0.0.1:{port}"
    process.extra["root"] = work / f"pod-{index}"
    return process


def _bytes(replicas: list[Process]) -> tuple[float, float]:
    """(from Comet, from peers) summed over the replicas' metrics."""
    comet = peers = 0.0
    for replica in replicas:
        text = requests.get(replica.url + "/metrics", timeout=10).text
        comet += metric(text, "registry_sync_downloaded_bytes_total")
        peers += metric(text, "registry_sync_peer_bytes_total")
    return comet, peers


def _all_on(replicas: list[Process], model: str, version: str, timeout: float) -> list[float]:
    """Seconds until each replica published the version (measured from the call)."""
    started, seen = time.monotonic(), {}
    deadline = started + timeout
    while len(seen) < len(replicas) and time.monotonic() < deadline:
        for replica in replicas:
            if replica.name not in seen and published_versions(
                    replica.extra["root"]) == {model: version}:
                seen[replica.name] = time.monotonic() - started
        time.sleep(0.05)
    if len(seen) < len(replicas):
        raise RuntimeError(f"{len(replicas) - len(seen)} replicas never published {version}")
    return sorted(seen.values())


def _one(count: int, work: Path) -> dict[str, float]:
    """Run N replicas through idle polling, one promotion and one leader SIGKILL."""
    model = "bench-replicated"
    with Processes(work) as processes, Server(FakeApi()) as api:
        handle = registry(processes)
        handle.register_files(model, "1.0.0", {"model.bin": os.urandom(MODEL_BYTES)},
                              status="Production")
        replicas = [_start(processes, handle, api.url, work, model, i) for i in range(count)]
        for replica in replicas:
            wait_until(lambda r=replica: answers(r.url + "/healthz"), 120,
                       f"{replica.name} /healthz", replica.popen)
        _all_on(replicas, model, "1.0.0", 300)
        time.sleep(2 * INTERVAL)
        handle.reset_request_counts()
        time.sleep(WINDOW)
        details_per_hour = handle.count(POLL) * 3600 / WINDOW
        before = _bytes(replicas)
        handle.register_files(model, "1.1.0", {"model.bin": os.urandom(MODEL_BYTES)},
                              status="Production")
        times = _all_on(replicas, model, "1.1.0", 300)
        after = _bytes(replicas)
        failover = _failover(processes, handle, api, replicas) if count > 1 else float("nan")
    return {"replicas": count, "details_per_hour": details_per_hour,
            "comet_bytes": after[0] - before[0], "peer_bytes": after[1] - before[1],
            "median_s": median(times), "max_s": times[-1], "failover_s": failover}


def _failover(processes: Processes, handle, api, replicas: list[Process]) -> float:
    """SIGKILL the leader; seconds until another replica's poll reaches Comet."""
    leader = holder(api)
    victim = next(r for r in replicas if r.name == leader)
    victim.popen.send_signal(signal.SIGKILL)
    victim.popen.wait(10)
    killed = time.monotonic()
    handle.reset_request_counts()
    wait_until(lambda: handle.count(POLL) > 0 and holder(api) not in ("", leader),
               60, "a new leader's poll")
    processes.stop(victim)
    return time.monotonic() - killed


def run(work: Path) -> Section:
    """Every N in turn; one table, four targets."""
    section = Section("10. Replicas: one poller, one download per promotion")
    rows = [_one(count, work / f"n{count}") for count in _counts()]
    expected = STATUSES_FOLLOWED * 3600 / INTERVAL
    section.table(
        f"1 model of {MODEL_BYTES // 1024} KiB, SYNC_INTERVAL={INTERVAL:g} s, lease "
        f"{LEASE:g} s / renew {RENEW:g} s / retry {RETRY:g} s; items requests counted over "
        f"{WINDOW:g} s idle",
        ["replicas", "Comet items requests / hour", "Comet bytes per promotion",
         "peer bytes per promotion", "promotion → all published, median s", "max s",
         "SIGKILL → new leader polls, s"],
        [[r["replicas"], round(r["details_per_hour"]), int(r["comet_bytes"]),
          int(r["peer_bytes"]), round(r["median_s"], 2), round(r["max_s"], 2),
          round(r["failover_s"], 2)] for r in rows])
    flat = all(abs(r["details_per_hour"] - expected) <= 0.1 * expected for r in rows)
    section.target("items?status= requests / hour, every N", ", ".join(
        f"{r['details_per_hour']:.0f}" for r in rows), f"{expected:.0f} ± 10%", flat,
        evidence={"runs": len(rows),
                  "items?status= requests": min((r["details_per_hour"] for r in rows),
                                                default=0)})
    section.target("Comet bytes per promotion, every N", ", ".join(
        str(int(r["comet_bytes"])) for r in rows), f"≤ {1.1 * MODEL_BYTES:.0f}",
        all(r["comet_bytes"] <= 1.1 * MODEL_BYTES for r in rows),
        evidence={"runs": len(rows),
                  "Comet bytes": min((r["comet_bytes"] for r in rows), default=0)})
    largest = rows[-1]
    section.target(f"promotion → all {largest['replicas']} published, median",
                   f"{largest['median_s']:.2f} s", f"≤ {INTERVAL + 5:g} s",
                   largest["median_s"] <= INTERVAL + 5,
                   evidence={"promotions timed": largest["median_s"]})
    failovers = [r["failover_s"] for r in rows if r["replicas"] > 1]
    section.target("SIGKILL → new leader polls, worst N", f"{max(failovers, default=0):.2f} s",
                   f"≤ {LEASE + INTERVAL:g} s", bool(failovers) and max(failovers) <= LEASE +
                   INTERVAL, evidence={"failovers": len(failovers)})
    section.notes.append(
        f"Machine load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores "
        "(shared with other engineers' work while this ran).")
    section.figures.update(rows=rows)
    return section
