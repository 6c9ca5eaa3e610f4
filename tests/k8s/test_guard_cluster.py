"""Guarded promotion in a Deployment of 3 replicas scraped by a real Prometheus (issue 29).

Three pods (sidecar + serving each, one worker), the Lease on the stand-in API server, and
Debian's `prometheus` scraping every serving's /metrics each second. The sidecars run the guard
with PROMETHEUS_URL: only the leader watches, from the Deployment's summed figures. A version
raising on 3 live rows in 10 (devkit.models.misbehaving) is decided, followed, judged
once, rolled back by the leader, and followed back by every replica; later polls keep it out.
The leader then stops: the follower elected next knows the refusal from the decision, keeps the
version out, and installs the next good one.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import yaml

from devkit.cluster import PEER_TOKEN, decision_history, holder, replica_env, wait_for_leader
from devkit.load import Load
from devkit.models import guard_rows, misbehaving, trained_models  # noqa: F401
from devkit.processes import free_port, published_versions, start_sidecar, wait_until
from devkit.registry import unique_name
from tests.support.serving_process import launch

TAG = "rolled-back"
GUARD = {"GUARD_ENABLED": "true", "GUARD_WINDOW": "30", "GUARD_SAMPLE_INTERVAL": "0.5",
         "GUARD_MIN_REQUESTS": "40", "GUARD_COMET_TAG": TAG, "SYNC_INTERVAL": "0.5"}
# Leadership must hold through the window on a loaded machine: a leader deposed mid-window
# takes the watch with it (the refusal, once made, is handed over in the decision).
STEADY_ELECTION = {"LEADER_ELECTION_LEASE_DURATION": "15", "LEADER_ELECTION_RENEW_DEADLINE": "10",
                   "LEADER_ELECTION_RETRY_PERIOD": "1"}
pytestmark = pytest.mark.skipif(shutil.which("prometheus") is None,
                                reason="needs Debian's prometheus (make system-deps)")


@contextlib.contextmanager
def prometheus(work: Path, targets: list[str]) -> Iterator[str]:
    """A real Prometheus scraping `targets` (host:port, /metrics) every second; its URL."""
    work.mkdir(parents=True, exist_ok=True)
    config = work / "prometheus.yml"
    config.write_text(yaml.safe_dump({
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "scrape_configs": [{"job_name": "serving", "static_configs": [{"targets": targets}]}]}))
    port = free_port()
    with open(work / "prometheus.log", "ab") as log:
        process = subprocess.Popen(
            ["prometheus", f"--config.file={config}", f"--storage.tsdb.path={work / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{port}"], stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: _ready(url), 30, what="prometheus ready")
        yield url
    finally:
        process.terminate()
        process.wait(10)


def _ready(url: str, path: str = "/-/ready") -> bool:
    with contextlib.suppress(requests.RequestException):
        return requests.get(url + path, timeout=2).status_code == 200
    return False


def test_one_decision_rolls_every_replica_back_and_it_stays_back(api, local_registry,
                                                                 trained_models, tmp_path):  # noqa: F811
    name = unique_name("guarded")
    local_registry.register_folder(name, "1.0.0", trained_models.pickled, status="Production")
    admins = [free_port() for _ in range(3)]
    with contextlib.ExitStack() as stack:
        scraped = stack.enter_context(prometheus(tmp_path / "prometheus",
                                                 [f"127.0.0.1:{a}" for a in admins]))
        replicas, servings = _deployment(stack, api, local_registry, tmp_path, name, admins,
                                         PROMETHEUS_URL=scraped)
        loads = [stack.enter_context(Load(s.url, clients=1, seconds=120, bodies=guard_rows()))
                 for s in servings]
        leader = wait_for_leader(api)
        wait_until(lambda: all(len(load.answers) >= 60 for load in loads), 30,
                   what="a baseline on every pod")
        local_registry.register_folder(name, "1.1.0", misbehaving(
            trained_models.pickled, tmp_path / "raising", "raise"), status="Production")
        wait_until(lambda: {name: "1.1.0"} in decision_history(api), 60, what="1.1.0 decided")
        wait_until(lambda: decision_history(api)[-1] == {name: "1.0.0"}, 60,
                   what="the rollback decided")
        for replica in replicas:
            replica.wait_for_versions({name: "1.0.0"}, timeout=60)
        history = decision_history(api)
        tripped = [(r.log_path.parent.name, e) for r in replicas
                   for e in r.events("guard_tripped")]
        # the leader alone judged, once; every replica is back, and stays back
        assert len(tripped) == 1 and tripped[0][1]["check"] == "error_rate", tripped
        assert history[-2:] == [{name: "1.1.0"}, {name: "1.0.0"}], history
        leading = replicas[int(leader.rpartition("-")[2])]
        assert leading.events("guard_tripped"), "a follower judged"
        polls = len(leading.events("sync_finished"))
        wait_until(lambda: len(leading.events("sync_finished")) >= polls + 4, 20,
                   what="four more polls")
        assert decision_history(api)[-1] == {name: "1.0.0"}
        assert all(published_versions(tmp_path / f"pod-{i}") == {name: "1.0.0"}
                   for i in range(3))
        assert TAG in local_registry.tags_of(name, "1.1.0")
        _next_leader_keeps_it_out(api, local_registry, trained_models, name, replicas,
                                  leading, tmp_path)
        for load in loads:
            load.stop()
            assert all(a.status in (200, 500) for a in load.answers), load.failures()[:3]


def test_without_prometheus_the_leader_judges_what_a_followers_pod_served(
        api, local_registry, trained_models, tmp_path):  # noqa: F811
    """Bad traffic on one follower's pod alone: its reports make the leader roll back."""
    name = unique_name("reported")
    local_registry.register_folder(name, "1.0.0", trained_models.pickled, status="Production")
    admins = [free_port() for _ in range(3)]
    with contextlib.ExitStack() as stack:
        replicas, servings = _deployment(stack, api, local_registry, tmp_path, name, admins)
        leader = int(wait_for_leader(api).rpartition("-")[2])
        follower = (leader + 1) % 3
        load = stack.enter_context(Load(servings[follower].url, clients=1, seconds=90,
                                        bodies=guard_rows()))
        wait_until(lambda: len(load.answers) >= 60, 30, what="a baseline on one follower")
        local_registry.register_folder(name, "1.1.0", misbehaving(
            trained_models.pickled, tmp_path / "raising", "raise"), status="Production")
        wait_until(lambda: {name: "1.1.0"} in decision_history(api), 60, what="1.1.0 decided")
        wait_until(lambda: decision_history(api)[-1] == {name: "1.0.0"}, 60,
                   what="the rollback decided")
        tripped = [(i, e) for i, r in enumerate(replicas) for e in r.events("guard_tripped")]
        # the leader judged, once, on requests its own pod never served: the follower's report
        assert [i for i, _ in tripped] == [leader], tripped
        assert tripped[0][1]["check"] == "error_rate" and tripped[0][1]["requests"] >= 40
        for replica in replicas:
            replica.wait_for_versions({name: "1.0.0"}, timeout=60)
        load.stop()
        _reports_are_guarded(replicas[leader].url)


def _reports_are_guarded(sidecar: str) -> None:
    """The report endpoint: a credential, a bounded body, a checked one, each refused by name."""
    url, auth = f"{sidecar}/-/guard-figures", {"Authorization": f"Bearer {PEER_TOKEN}"}
    assert requests.post(url, data=b"{}", timeout=5).status_code == 401
    big = requests.post(url, data=b"x" * 70_000, headers=auth, timeout=5)
    assert big.status_code == 413 and "65536" in big.json()["error"]
    bad = requests.post(url, json={"pod": "pod-9", "sets": {"abc123abc123": {"ok": -5}}},
                        headers=auth, timeout=5)
    assert bad.status_code == 400 and "sets[abc123abc123]" in bad.json()["error"]


def _deployment(stack: contextlib.ExitStack, api, local_registry, tmp_path: Path, name: str,
                admins: list[int], **extra: str) -> tuple[list, list]:
    """Three pods (sidecar with the guard, serving with one worker) serving 1.0.0."""
    replicas, servings = [], []
    token_file = tmp_path / "service-account-token"
    token_file.write_text("service-account-token\n")
    for i, admin in enumerate(admins):
        replicas.append(start_sidecar(local_registry, tmp_path / f"pod-{i}", name,
                                      wait_ready=False, **replica_env(
                                          api.url, token_file, i, **STEADY_ELECTION,
                                          SERVING_URL=f"http://127.0.0.1:{admin}",
                                          **extra, **GUARD)))
        stack.callback(replicas[-1].stop)
    for replica in replicas:
        replica.wait_for_versions({name: "1.0.0"}, timeout=90)
    for i, admin in enumerate(admins):
        (tmp_path / f"serving-{i}" / "metrics").mkdir(parents=True)
        servings.append(launch(tmp_path / f"pod-{i}", tmp_path / f"serving-{i}", workers=1,
                               admin=admin, token=PEER_TOKEN, wait=False))
        stack.callback(servings[-1].stop)
    for serving in servings:
        wait_until(lambda s=serving: _ready(s.url, "/readyz"), 120, what="serving ready")
        serving.wait_for_version("1.0.0", timeout=60)
    return replicas, servings


def _next_leader_keeps_it_out(api, local_registry, models, name, replicas, leading,
                              tmp_path: Path) -> None:
    """The leader stops; its successor polls, refuses 1.1.0 as handed over, takes 1.2.0."""
    leading.stop()
    rest = [r for r in replicas if r is not leading]
    successor = wait_until(lambda: holder(api) not in (None, leading.root.name) and holder(api),
                           30, what="a new leader")
    new = next(r for r in rest if r.root.name == successor)
    assert new.events("refusal_adopted"), "the refusal was not handed over"
    wait_until(lambda: any("already rejected" in (e.get("detail") or "")
                           for e in new.events("sync_finished")), 30,
               what="the new leader refusing the rolled-back set")
    assert decision_history(api)[-1] == {name: "1.0.0"}
    assert not any(r.events("guard_tripped") for r in rest), "judged again"
    assert all(published_versions(r.root) == {name: "1.0.0"} for r in rest)
    local_registry.register_folder(name, "1.2.0", models.pickled, status="Production")
    for replica in rest:
        replica.wait_for_versions({name: "1.2.0"}, timeout=60)
