"""Replicas under hostile neighbours: a Lease writer is not a leader, a wake-up flood is one
pass, idle connections are not a crash, a failing leader hands over, Deployments keep apart.

Real sidecar processes; the Lease stand-in refuses unconditional updates and oversized
annotations as the API server does. A "rogue" here writes the Lease straight into the stand-in's
store, as any workload with `update` on Leases in the namespace could.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import requests

from devkit.cluster import (
    LEASE,
    NAMESPACE,
    PEER_TOKEN,
    decided_versions,
    decision_json,
    holder,
    sealed,
    start_replica,
    start_replicas,
    wait_for_leader,
)
from devkit.fake_leases import ApiError
from devkit.processes import published_versions, start_sidecar, wait_until
from devkit.registry import unique_name
from registry_sync.cluster.decision import DECISION_ANNOTATION

POLL = "registry-model/items"  # what a pass asks, once per followed status (finder.py)
STATUSES = 2  # Production and the default candidate status, Staging
DIGEST = "ab" * 32


def _stop_all(replicas) -> None:
    for replica in replicas:
        replica.stop()


def _rogue_write(api, value: str, **spec) -> None:
    """Write the decision annotation (and spec fields) as a Lease writer: read, then a
    conditional update (the API server refuses unconditional ones), again on a conflict."""
    for _ in range(50):
        lease = api.leases.get(NAMESPACE, LEASE)
        lease["metadata"].setdefault("annotations", {})[DECISION_ANNOTATION] = value
        lease["spec"].update(spec)
        try:
            api.leases.update(NAMESPACE, LEASE, lease)
            return
        except ApiError as exc:
            if exc.code != 409:
                raise
    raise AssertionError("the Lease kept changing under the rogue's writes")


@contextlib.contextmanager
def _capture():
    """An HTTP server on loopback recording every request's path and Authorization header."""
    seen: list[tuple[str, str]] = []

    class Catch(BaseHTTPRequestHandler):
        def _any(self) -> None:
            seen.append((self.path, self.headers.get("Authorization", "")))
            self.send_response(200)
            self.send_header("Content-Length", "6")
            self.end_headers()
            self.wfile.write(b"666666")

        do_GET = do_POST = _any

        def log_message(self, format: str, *args: object) -> None:
            """Stay quiet."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Catch)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()


def _malformed(good: dict) -> list[tuple[str, str]]:
    """(label, annotation value): each kind of malformed or unauthentic decision."""
    def changed(edit) -> str:
        raw = json.loads(json.dumps(good))
        edit(raw)
        return sealed(raw)

    model = lambda r: r["models"][0]  # noqa: E731 - a short accessor for the table below
    return [
        ("files-of-ints", changed(lambda r: model(r).update(files=[1]))),
        ("deep-nesting", sealed("[" * 50_000 + "]" * 50_000)),
        ("not-json", sealed("{not json")),
        ("null", sealed("null")),
        ("a-list", sealed("[1, 2]")),
        ("models-object", changed(lambda r: r.update(models={}))),
        ("models-empty", changed(lambda r: r.update(models=[]))),
        ("model-a-string", changed(lambda r: r.update(models=["x"]))),
        ("name-missing", changed(lambda r: model(r).pop("name"))),
        ("name-a-path", changed(lambda r: model(r).update(name="../x"))),
        ("version-not-semver", changed(lambda r: model(r).update(version="../../x"))),
        ("files-a-string", changed(lambda r: model(r).update(files="abc"))),
        ("absolute-path", changed(lambda r: model(r)["files"][0].update(path="/etc/passwd"))),
        ("size-huge-float", changed(lambda r: model(r)["files"][0].update(size=1e300))),
        ("bad-hash", changed(lambda r: model(r)["files"][0].update(sha256="f00"))),
        ("peer-file-url", changed(lambda r: r.update(peerUrl="file:///etc/passwd"))),
        ("leader-a-number", changed(lambda r: r.update(leader=123))),
        ("issued-nan", changed(lambda r: r.update(issuedAt=float("nan")))),
        ("too-many-models", changed(lambda r: r.update(models=[model(r)] * 65))),
        ("same-model-twice", changed(lambda r: r["models"].append(model(r)))),
        ("unsealed", json.dumps(good)),
        ("wrong-key", sealed(good, key="not-the-deployments-key-000000")),
        ("other-lease", sealed(good, lease="another-deployment")),
        ("replayed-older", changed(lambda r: r.update(issuedAt=r["issuedAt"] - 1000))),
    ]


def test_malformed_and_unauthentic_decisions_change_nothing_and_leak_no_token(
        api, local_registry, tmp_path):
    """24 kinds of bad decisions, then a key-less takeover of the Lease naming a rogue peer:
    no replica installs anything, nothing reaches the rogue, every thread lives, and the next
    promotion is served by both (the leader overwrote the Lease each time)."""
    name = unique_name("clf")
    local_registry.register_files(name, "1.0.0", {"m.bin": os.urandom(5_000)},
                                  status="Production")
    replicas = start_replicas(local_registry, api.url, tmp_path, name, 2)
    try:
        for replica in replicas:
            replica.wait_for_versions({name: "1.0.0"})
        leader = wait_for_leader(api)
        follower = next(r for r in replicas if r.root.name != leader)
        good = decision_json(api.leases.get(NAMESPACE, LEASE))
        kinds = _malformed(good)
        for label, value in kinds:
            refused = len(follower.events("decision_refused"))
            _rogue_write(api, value)
            wait_until(lambda n=refused: len(follower.events("decision_refused")) > n, 10,
                       what=f"the follower refusing {label}")
        with _capture() as (rogue_url, seen):
            forged = dict(good, leader="pod-rogue", peerUrl=rogue_url, issuedAt=time.time())
            forged["models"] = [dict(good["models"][0], version="6.6.6", files=[
                {"path": "m.bin", "size": 6, "sha256": DIGEST}])]
            _rogue_write(api, json.dumps(forged), holderIdentity="pod-rogue",
                         leaseDurationSeconds=3600)
            for replica in replicas:  # a webhook at each replica while the rogue holds it
                requests.post(f"{replica.url}/-/poll-now", timeout=5,
                              headers={"Authorization": f"Bearer {PEER_TOKEN}"})
            time.sleep(3)
            assert seen == []
        for replica in replicas:
            assert published_versions(replica.root) == {name: "1.0.0"}
            assert requests.get(f"{replica.url}/healthz", timeout=5).status_code == 200
        wait_until(lambda: holder(api) in ("pod-0", "pod-1"), 15, what="a replica leading again")
        local_registry.register_files(name, "1.1.0", {"m.bin": os.urandom(5_000)},
                                      status="Production")
        for replica in replicas:
            replica.wait_for_versions({name: "1.1.0"}, timeout=30)
        wait_until(lambda: decided_versions(api) == {name: "1.1.0"}, 15, what="the decision")
        assert not any(r.events("decision_watch_crashed") for r in replicas)
        assert len(follower.events("decision_refused")) >= len(kinds)
    finally:
        _stop_all(replicas)


def test_five_hundred_wake_ups_in_ten_seconds_cost_a_few_comet_requests(
        api, local_registry, tmp_path):
    """Wake-ups at the leader and at a follower (forwarded) are merged and spaced: a handful of
    Comet requests, the promotion served, the follower's threads bounded."""
    name = unique_name("clf")
    local_registry.register_files(name, "1.0.0", {"m.bin": b"1"}, status="Production")
    replicas = start_replicas(local_registry, api.url, tmp_path, name, 2, SYNC_INTERVAL="600")
    try:
        for replica in replicas:
            replica.wait_for_versions({name: "1.0.0"})
        local_registry.register_files(name, "1.1.0", {"m.bin": b"2"}, status="Production")
        local_registry.reset_request_counts()
        auth = {"Authorization": f"Bearer {PEER_TOKEN}"}
        follower = next(r for r in replicas if r.root.name != holder(api))
        started, sent = time.monotonic(), 0
        with requests.Session() as session:
            while sent < 500 and time.monotonic() - started < 10:
                target = replicas[sent % 2]
                assert session.post(f"{target.url}/-/poll-now", headers=auth,
                                    timeout=5).status_code == 202
                sent += 1
        for replica in replicas:
            replica.wait_for_versions({name: "1.1.0"}, timeout=20)
        elapsed = time.monotonic() - started
        assert sent == 500
        # one woken pass per POLL_NOW_MIN_INTERVAL (5 s) at the leader, plus the first
        assert 1 <= local_registry.count(POLL) <= STATUSES * (2 + elapsed / 5)
        # the follower forwarded at most one per second, on its one forwarding thread
        assert len(follower.events("poll_now_forwarded")) <= 2 + elapsed
    finally:
        _stop_all(replicas)


def test_two_thousand_idle_connections_leave_the_sidecar_healthy_and_publishing(
        local_registry, tmp_path, no_proxy):
    """With 512 descriptors, 2,000 idle connections to the sidecar's port: it keeps running,
    /healthz answers once they go, and a promotion made meanwhile is published."""
    name = unique_name("clf")
    local_registry.register_files(name, "1.0.0", {"m.bin": b"1"}, status="Production")
    sidecar = start_sidecar(local_registry, tmp_path / "models", name)
    held: list[socket.socket] = []
    try:
        sidecar.wait_for_versions({name: "1.0.0"})
        resource.prlimit(sidecar.process.pid, resource.RLIMIT_NOFILE, (512, 512))
        deadline = time.monotonic() + 30
        while len(held) < 2000 and time.monotonic() < deadline:
            with contextlib.suppress(OSError):  # a port that stopped accepting: counted below
                held.append(socket.create_connection(("127.0.0.1", sidecar.port), timeout=1))
        assert len(held) == 2000
        local_registry.register_files(name, "1.1.0", {"m.bin": b"2"}, status="Production")
        sidecar.wait_for_versions({name: "1.1.0"}, timeout=30)
        assert sidecar.process.poll() is None
    finally:
        for connection in held:
            connection.close()
    try:
        wait_until(lambda: requests.get(f"{sidecar.url}/healthz", timeout=2).ok, 20,
                   what="/healthz 200 after the flood")
        assert sidecar.process.poll() is None
    finally:
        sidecar.stop()


def test_a_leader_without_comet_hands_over_and_the_promotion_is_served(
        api, local_registry, tmp_path):
    """pod-0 leads but cannot reach Comet: it steps down after LEADER_STEP_DOWN_AFTER (at least
    a decision's life), pod-1 leads, and pod-0 serves the promotion from it."""
    name = unique_name("clf")
    local_registry.register_files(name, "1.0.0", {"m.bin": b"1"}, status="Production")
    with socket.socket() as dead:
        dead.bind(("127.0.0.1", 0))
        unreachable = f"http://127.0.0.1:{dead.getsockname()[1]}"
    cut_off = start_replica(local_registry, api.url, tmp_path, name, 0, INIT_MAX_FAILURES="0",
                            COMET_URL_OVERRIDE=unreachable, LEADER_STEP_DOWN_AFTER="1")
    replicas = [cut_off]
    try:
        assert wait_for_leader(api) == "pod-0"
        replicas.append(start_replica(local_registry, api.url, tmp_path, name, 1))
        wait_until(lambda: holder(api) == "pod-1", 40, what="pod-1 leading")
        assert cut_off.events("leader_stepped_down")
        local_registry.register_files(name, "1.1.0", {"m.bin": b"2"}, status="Production")
        for replica in replicas:
            replica.wait_for_versions({name: "1.1.0"}, timeout=30)
        assert holder(api) == "pod-1"
    finally:
        _stop_all(replicas)


def test_two_deployments_in_one_namespace_keep_their_own_leaders(api, local_registry, tmp_path):
    """Pods named as two Deployments' pods, default Lease names: two Leases, each led by its
    own pods, each replica serving its own Deployment's model."""
    first, second = unique_name("alpha"), unique_name("beta")
    local_registry.register_files(first, "1.0.0", {"m.bin": b"a"}, status="Production")
    local_registry.register_files(second, "2.0.0", {"m.bin": b"b"}, status="Production")
    pods = [("alpha", first, "5c4d7b9f8-aaaa1", "alpha-decision-key-000000000000"),
            ("alpha", first, "5c4d7b9f8-aaaa2", "alpha-decision-key-000000000000"),
            ("beta", second, "6d5e8c0a9-bbbb1", "beta-decision-key-0000000000000")]
    replicas = []
    try:
        for i, (deployment, model, suffix, key) in enumerate(pods):
            replicas.append(start_replica(local_registry, api.url, tmp_path, model, i,
                                          POD_NAME=f"{deployment}-{suffix}", DECISION_KEY=key,
                                          LEADER_ELECTION_LEASE=""))
        for replica, (_deployment, model, _suffix, _key) in zip(replicas, pods, strict=True):
            replica.wait_for_versions({model: "1.0.0" if model == first else "2.0.0"})
        leases = lambda: {n: o["spec"].get("holderIdentity")  # noqa: E731
                          for (_ns, n), o in api.leases.objects.items()}
        wait_until(lambda: set(leases()) == {"alpha", "beta"} and all(leases().values()), 20,
                   what="a Lease per Deployment, each held")
        assert leases()["alpha"].startswith("alpha-") and leases()["beta"].startswith("beta-")
        assert (NAMESPACE, LEASE) not in api.leases.objects
    finally:
        _stop_all(replicas)
