"""Processes die: the sidecar by SIGKILL at random instants, a serving worker under load, serving
restarted while the registry is down. `current` stays complete and serving keeps answering.
"""

from __future__ import annotations

import json
import os
import random
import signal
import time

import requests

from devkit.processes import wait_until
from model_contract import layout
from tests.support.pod_system import kill

ROUNDS = 8


def test_sigkill_of_the_sidecar_at_random_instants_never_leaves_a_partial_current(pod):
    """Killed during download, unzip, validation or publication, round after round: `current`
    is always a complete snapshot, serving never fails, and a restart finishes the job."""
    seed = random.randrange(1_000_000)
    rng = random.Random(seed)
    pod.sidecar.stop()
    pod.fault(path="get-asset", drip_bps=400_000)  # a download of about 0.4 s
    outcomes = []
    with pod.load(seconds=90) as load:
        whole_sync = time_one_sync(pod)
        # one instant per slice of [0, 1.3 x a whole sync], in random order: early and late
        delays = [(i + rng.random()) * 1.3 * whole_sync / ROUNDS for i in range(ROUNDS)]
        rng.shuffle(delays)
        for delay in delays:
            before = pod.published()
            version = pod.promote(rng.choice([pod.folders.pipeline, pod.folders.alternative]))
            pod.start_sidecar()
            time.sleep(delay)
            kill(pod.sidecar.process)
            pod.assert_current_complete()
            json.loads((pod.root / layout.STATE).read_text())  # state file never torn
            outcomes.append((round(delay, 2), pod.published() != before))
            assert pod.published()[pod.model] in (before[pod.model], version)
        pod.registry.clear_faults()
        pod.start_sidecar()
        pod.wait_served(version)
        assert not list((pod.root / ".staging").glob("*"))
    load.assert_all_ok()
    pod.assert_only_published_answered(load)
    published = [delay for delay, done in outcomes if done]
    assert published and len(published) < ROUNDS, f"seed {seed}: {outcomes}"


def time_one_sync(pod) -> float:
    """Seconds from a started sidecar's /healthz to its publication of a new version."""
    version = pod.promote()
    pod.start_sidecar()
    started = time.monotonic()
    pod.wait_published(version)
    took = time.monotonic() - started
    kill(pod.sidecar.process)  # right after a publication: one more instant covered
    pod.assert_current_complete()
    return took


def test_sigkill_of_a_worker_under_load_loses_only_the_requests_it_had_received(pod):
    """The master replaces the worker on the current snapshot; requests sent once its death is
    seen all succeed; lost: what reached that worker in the moment it died."""
    workers = pod.serving.worker_pids()
    assert len(workers) == 2
    current = layout.current_snapshot_id(pod.root)
    victim = min(workers)
    clients = 4
    with pod.load(clients=clients, pause=0.0, seconds=30) as load:
        time.sleep(1.0)
        os.kill(victim, signal.SIGKILL)
        killed_at = time.monotonic()
        spawned = wait_until(lambda: pod.serving.worker_pids() - workers, 20,
                             what="a respawned worker").pop()
        model = wait_until(lambda: new_worker_model(pod, spawned), 30, interval=0.01,
                           what="an answer from the new worker")
        assert model["snapshot"] == current
        time.sleep(1.0)
    failed = load.failures()
    # Lost: what the killed worker had received (one in flight, others queued behind it), a
    # request sent on a kept-alive connection before the reset reached the client, and a new
    # connection queued on the dying worker's own socket (SO_REUSEPORT): below HTTP, at most
    # two per client, none once the death was seen.
    shown = [(a.client, round(a.started - killed_at, 3), a.status, a.error) for a in failed]
    per_client = [a.client for a in failed]
    assert all(per_client.count(c) <= 2 for c in per_client), shown
    assert all(a.status == 0 and a.started < killed_at + 1.0 for a in failed), shown
    assert [a for a in load.answers if a.started > killed_at and a.status == 200]
    assert {a.snapshot for a in load.answers if a.status == 200} == {current}
    assert len(load.answers) > 200


def new_worker_model(pod, pid: int) -> dict | None:
    """The model block of /api/v1/model if the worker `pid` answered it, else None."""
    answer = pod.served_model()
    return answer["model"] if answer["worker"] == pid else None


def test_serving_restarted_while_the_registry_is_down_starts_on_the_last_good_snapshot(pod):
    """No registry: serving (and the sidecar) restart on what is on disk and stay up."""
    version = pod.promote()
    pod.wait_served(version)
    snapshot_id = layout.current_snapshot_id(pod.root)
    pod.registry.stop()
    pod.restart_sidecar(INIT_MAX_FAILURES="1")  # a good snapshot: it must not give up
    pod.relaunch_serving()  # returns once /readyz answers 200
    ready = requests.get(f"{pod.serving.url}/readyz", timeout=5).json()
    assert (ready["snapshot"], ready["version"]) == (snapshot_id, version)
    with pod.load() as load:
        wait_until(lambda: pod.status()["consecutiveFailures"] >= 2, 20, what="failed passes")
        assert "ConnectionError" in pod.status()["lastError"]["message"]
        assert pod.sidecar.process.poll() is None
        assert requests.get(f"{pod.sidecar.url}/readyz", timeout=5).status_code == 200
        pod.registry.restart()
        newer = pod.promote(pod.folders.alternative)
        pod.wait_served(newer)
    load.assert_all_ok()
    assert {a.version for a in load.answers} <= {version, newer}
