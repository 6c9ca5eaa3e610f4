"""Replicas as real sidecar processes: one polls Comet, the others follow the Lease's decision."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import requests

from devkit.cluster import (
    LEASE,
    NAMESPACE,
    PEER_TOKEN,
    decided_versions,
    decision_history,
    decision_json,
    holder,
    sealed,
    start_replica,
    start_replicas,
    wait_for_leader,
)
from devkit.processes import published_versions, wait_until
from devkit.registry import unique_name
from registry_sync.cluster.decision import DECISION_ANNOTATION

DETAILS = "registry-model/items"  # what a poll asks, once per followed status (finder.py)


def _stop_all(replicas) -> None:
    for replica in replicas:
        replica.stop()


def _serving_first_version(api, local_registry, tmp_path, count: int) -> tuple[str, list]:
    """`count` replicas all serving 1.0.0 of a new model; Comet's request counts reset."""
    name = unique_name("clf")
    local_registry.register_files(name, "1.0.0", {"m.bin": os.urandom(50_000)},
                                  status="Production")
    replicas = start_replicas(local_registry, api.url, tmp_path, name, count)
    try:
        for replica in replicas:
            replica.wait_for_versions({name: "1.0.0"})
    except BaseException:
        _stop_all(replicas)
        raise
    local_registry.reset_request_counts()
    return name, replicas


def test_only_the_leader_polls_and_comet_serves_one_download_per_promotion(
        api, local_registry, tmp_path):
    """Three replicas: details requests at one poller's rate; one download per promotion."""
    name, replicas = _serving_first_version(api, local_registry, tmp_path, 3)
    try:
        local_registry.register_files(name, "1.1.0", {"m.bin": os.urandom(50_000)},
                                      status="Production")
        for replica in replicas:
            replica.wait_for_versions({name: "1.1.0"}, timeout=30)
        assert decided_versions(api) == {name: "1.1.0"}
        assert local_registry.downloads() == 1
        leader = holder(api)
        followers = [r for r in replicas if r.root.name != leader]
        assert all(r.events("model_fetched_from_peer") for r in followers)
        roles = {r.root.name: r.status()["cluster"]["leader"] for r in replicas}
        assert roles == {r.root.name: r.root.name == leader for r in replicas}
        assert "registry_sync_leader 1.0" in next(
            r for r in replicas if r.root.name == leader).metrics()
        local_registry.reset_request_counts()
        # 8 intervals of 0.5 s, 2 statuses (Production, Staging): one poller ~16, three ~48
        time.sleep(4)
        assert 6 <= local_registry.count(DETAILS) <= 24
    finally:
        _stop_all(replicas)


def test_a_new_leader_polls_within_lease_duration_and_interval_after_a_sigkill(
        api, local_registry, tmp_path):
    """SIGKILL the leader: another takes the Lease in time and carries the next promotion."""
    name = unique_name("clf")
    local_registry.register_files(name, "1.0.0", {"m.bin": b"1"}, status="Production")
    replicas = start_replicas(local_registry, api.url, tmp_path, name, 2)
    try:
        leader = wait_for_leader(api)
        killed = next(r for r in replicas if r.root.name == leader)
        killed.stop(signal.SIGKILL)
        started = time.monotonic()
        successor = wait_until(lambda: holder(api) not in ("", leader) and holder(api), 15,
                               what="a new Lease holder")
        assert time.monotonic() - started <= 3 + 0.5 + 2  # lease + interval + slack on 2 cores
        local_registry.register_files(name, "1.1.0", {"m.bin": b"2"}, status="Production")
        survivor = next(r for r in replicas if r.root.name == successor)
        survivor.wait_for_versions({name: "1.1.0"}, timeout=20)
        # two leaders in turn, one decision per registry state: never back, never another
        wait_until(lambda: decided_versions(api) == {name: "1.1.0"}, 10, what="the decision")
        assert decision_history(api) == [{name: "1.0.0"}, {name: "1.1.0"}]
    finally:
        _stop_all(replicas)


def test_a_lying_peer_is_refused_and_comet_used(api, local_registry, tmp_path):
    """The Lease names a peer that sends other bytes: the follower refuses them and uses Comet,
    for the champion and the challenger alike."""
    name = unique_name("clf")
    original, staged = os.urandom(20_000), os.urandom(10_000)
    local_registry.register_files(name, "1.0.0", {"m.bin": original}, status="Production")
    local_registry.register_files(name, "1.1.0", {"m.bin": staged}, status="Staging")
    leader = start_replica(local_registry, api.url, tmp_path, name, 0)
    leader.wait_for_versions({name: "1.0.0"})
    wait_until(lambda: "candidate" in _decision(api), 20, what="a decision with a candidate")
    leader.stop()
    with _lying_peer(len(original)) as liar_url:
        _hold_lease_for(api, "pod-liar", liar_url)
        local_registry.reset_request_counts()
        follower = start_replica(local_registry, api.url, tmp_path, name, 1)
        try:
            follower.wait_for_versions({name: "1.0.0"}, timeout=30)
            assert (follower.root / "current" / name / "m.bin").read_bytes() == original
            wait_until(lambda: (follower.root / "candidate").is_symlink(), 30,
                       what="the candidate linked from Comet")
            assert (follower.root / "candidate" / name / "m.bin").read_bytes() == staged
            refused = follower.events("peer_fetch_failed")
            assert len(refused) >= 2 and all(e["refused"] is True for e in refused)
            assert local_registry.downloads() == 2 and holder(api) == "pod-liar"
        finally:
            follower.stop()


@contextlib.contextmanager
def _lying_peer(size: int):
    """An HTTP server on loopback answering every GET with `size` random bytes."""
    class Liar(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", str(size))
            self.end_headers()
            self.wfile.write(os.urandom(size))

        def log_message(self, format: str, *args: object) -> None:
            """Stay quiet."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Liar)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _hold_lease_for(api, identity: str, peer_url: str) -> None:
    """A (rogue) holder for an hour, its decision pointing at peer_url: a pod of the Deployment
    (it holds the key) that lies about the bytes."""
    lease = api.leases.get(NAMESPACE, LEASE)
    decided = decision_json(lease)
    decided.update(leader=identity, peerUrl=peer_url, issuedAt=time.time())
    lease["metadata"]["annotations"][DECISION_ANNOTATION] = sealed(decided)
    lease["spec"].update(holderIdentity=identity, leaseDurationSeconds=3600,
                         renewTime=datetime.now(UTC).isoformat())
    api.leases.update(NAMESPACE, LEASE, lease)


def test_followers_keep_serving_through_an_api_outage_and_resume(api, local_registry,
                                                                  tmp_path):
    """Broken watches and a 503ing API server: nothing unpublished; the promotion lands after."""
    name = unique_name("clf")
    local_registry.register_files(name, "1.0.0", {"m.bin": b"1"}, status="Production")
    replicas = start_replicas(local_registry, api.url, tmp_path, name, 2)
    try:
        for replica in replicas:
            replica.wait_for_versions({name: "1.0.0"})
        api.fail_with = 503
        api.leases.close_watches()
        local_registry.register_files(name, "1.1.0", {"m.bin": b"2"}, status="Production")
        time.sleep(3)  # past the renew deadline: nobody leads, nobody is left without a model
        for replica in replicas:
            assert published_versions(replica.root) in ({name: "1.0.0"}, {name: "1.1.0"})
            assert requests.get(f"{replica.url}/readyz", timeout=5).status_code == 200
        api.fail_with = None
        for replica in replicas:
            replica.wait_for_versions({name: "1.1.0"}, timeout=30)
        assert any(r.events("decision_watch_broken") for r in replicas)
    finally:
        _stop_all(replicas)


def test_a_replica_starting_while_the_api_server_is_down_polls_comet_itself(
        api, local_registry, tmp_path):
    """No leader and no decision for a lease duration: it fetches its first model on its own."""
    name = unique_name("clf")
    local_registry.register_files(name, "1.0.0", {"m.bin": b"1"}, status="Production")
    api.fail_with = 503
    replica = start_replica(local_registry, api.url, tmp_path, name, 0)
    try:
        replica.wait_for_versions({name: "1.0.0"}, timeout=20)
        assert holder(api) == ""
    finally:
        replica.stop()


def test_a_frozen_leader_is_replaced_and_webhooks_reach_the_new_one(api, local_registry,
                                                                    tmp_path):
    """SIGSTOP (a network cut): a successor leads and names itself; a follower's poll-now
    reaches it though the interval is 10 minutes; the old leader wakes as a follower."""
    name = unique_name("clf")
    local_registry.register_files(name, "1.0.0", {"m.bin": b"1"}, status="Production")
    replicas = start_replicas(local_registry, api.url, tmp_path, name, 3, SYNC_INTERVAL="600")
    frozen = None
    try:
        for replica in replicas:
            replica.wait_for_versions({name: "1.0.0"})
        leader = wait_for_leader(api)
        frozen = next(r for r in replicas if r.root.name == leader)
        frozen.process.send_signal(signal.SIGSTOP)
        successor = wait_until(lambda: holder(api) not in ("", leader) and holder(api), 15,
                               what="a new Lease holder")
        wait_until(lambda: _decision_leader(api) == successor, 15, what="the new leader named")
        local_registry.register_files(name, "1.1.0", {"m.bin": b"2"}, status="Production")
        follower = next(r for r in replicas if r.root.name not in (leader, successor))
        woken = requests.post(f"{follower.url}/-/poll-now", timeout=5,
                              headers={"Authorization": f"Bearer {PEER_TOKEN}"})
        assert woken.status_code == 202
        follower.wait_for_versions({name: "1.1.0"}, timeout=20)
        frozen.process.send_signal(signal.SIGCONT)
        frozen.wait_for_versions({name: "1.1.0"}, timeout=20)
        assert holder(api) == successor
        assert decision_history(api) == [{name: "1.0.0"}, {name: "1.1.0"}]
        assert requests.post(f"{follower.url}/-/poll-now", timeout=5).status_code == 401
    finally:
        if frozen is not None:
            frozen.process.send_signal(signal.SIGCONT)
        _stop_all(replicas)


def _decision(api) -> dict:
    return decision_json(api.leases.objects.get((NAMESPACE, LEASE)) or {})


def _decision_leader(api) -> str:
    return _decision(api).get("leader", "")


def _candidate_versions(replica) -> dict[str, str] | None:
    candidate = replica.status().get("candidate")
    return candidate["versions"] if candidate and candidate["link"] else None


def test_a_staging_version_reaches_candidate_on_followers_from_the_leader(
        api, local_registry, tmp_path):
    """The decision carries the challenger: every replica links it as `candidate`, one Comet
    download; promoted to Production, the decision has no candidate and every link goes."""
    name, replicas = _serving_first_version(api, local_registry, tmp_path, 2)
    try:
        staged = os.urandom(30_000)
        local_registry.register_files(name, "1.1.0", {"m.bin": staged}, status="Staging")
        for replica in replicas:
            wait_until(lambda r=replica: _candidate_versions(r) == {name: "1.1.0"}, 30,
                       what=f"1.1.0 linked as candidate on {replica.root.name}")
            assert (replica.root / "candidate" / name / "m.bin").read_bytes() == staged
        assert local_registry.downloads() == 1
        follower = next(r for r in replicas if r.root.name != holder(api))
        assert any(e["version"] == "1.1.0" for e in follower.events("model_fetched_from_peer"))
        assert follower.status()["cluster"]["decision"]["candidate"] == {name: "1.1.0"}
        local_registry.set_status(name, "1.1.0", "Production")
        for replica in replicas:
            replica.wait_for_versions({name: "1.1.0"}, timeout=30)
            wait_until(lambda r=replica: not (r.root / "candidate").is_symlink(), 30,
                       what=f"candidate removed on {replica.root.name}")
    finally:
        _stop_all(replicas)
