"""The front's bounds per client and per worker, against serving started as the Deployment starts
it (`python -m serving.front`, the manifest's FRONT_* settings, only the cap and deadlines
shortened where said), with a normal load running: clients that never read their answers, many
slow senders with large heads and bodies, a model that leaks, workers killed in a row. In each,
normal clients are answered (>= 95% within 1 s, none failed), the front never exits, and, where
memory is the target, serving runs in a 1 GiB memory cgroup (the manifest's limit) that never
OOM-kills anything.
"""

from __future__ import annotations

import os
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from devkit.load import VALID, Load
from devkit.models import leaking
from devkit.processes import wait_until
from devkit.snapshots import build_snapshot
from serving.config import client_memory, front_from_env
from serving.front.listener import is_listening
from tests.support import cgroup, pod
from tests.support.greedy_clients import Heavy, HeavySenders, SlowReaders
from tests.support.serving_process import Serving, launch, spreading_session

MIB = 1024 * 1024
SLACK = 6.0  # seconds: this machine is shared and loaded


def manifest_settings(tmp: Path) -> dict[str, str]:
    """The serving container's FRONT_* and WEB_CONCURRENCY values, as the Deployment sets them."""
    serving = pod.load(tmp)["serving"]
    return {k: v for k, v in serving.env.items()
            if k.startswith("FRONT_") or k == "WEB_CONCURRENCY"}


def start(work: Path, models: dict[str, Path], preexec_fn=None, **env: str) -> Serving:
    """Serving on 1.0.0 of `models` with the manifest's front settings, `env` laid over them."""
    root = work / "models"
    build_snapshot(root, models, "1.0.0")
    settings = {**manifest_settings(work / "pod"), **env}
    workers = int(settings.pop("WEB_CONCURRENCY"))
    return launch(root, work, workers=workers, preexec_fn=preexec_fn, **settings)


def assert_answered(load: Load, at_least: int = 50) -> None:
    """None failed, and at least 95% within 1 s."""
    load.assert_all_ok(at_least=at_least)
    quick = sum(1 for a in load.answers if a.ended - a.started <= 1.0)
    assert quick >= 0.95 * len(load.answers), f"{quick} of {len(load.answers)} within 1 s"


def fresh_connections_answered(server: Serving, count: int = 10) -> None:
    """`count` new connections each get a prediction at once (2 s: the machine is loaded)."""
    with spreading_session() as session:
        for _ in range(count):
            started = time.monotonic()
            answer = session.post(server.url + "/api/v1/predict", json=VALID, timeout=5)
            assert answer.status_code == 200
            assert time.monotonic() - started <= 2.0, time.monotonic() - started


@pytest.fixture(scope="module")
def memory_group() -> Iterator[cgroup.MemoryCgroup]:
    """A 1 GiB memory cgroup (the manifest's limit for serving), or a skip saying why not."""
    reason = cgroup.available()
    if reason is not None:
        pytest.skip(reason)
    with cgroup.MemoryCgroup("front-bounds", 1024 * MIB) as group:
        yield group


# --- clients that never read their answers ------------------------------------------------

CAP, SEND_TIMEOUT = 64, 2


@pytest.fixture(scope="module")
def capped(tmp_path_factory, trained_models) -> Iterator[Serving]:
    """Serving with FRONT_MAX_CONNECTIONS=64 and a 2 s send deadline, the connection balance on
    as deployed (the attackers' connections must not make it close a normal client's)."""
    server = start(tmp_path_factory.mktemp("front-capped"),
                   {"diamonds-classifier": trained_models.pipeline},
                   FRONT_MAX_CONNECTIONS=str(CAP), FRONT_SEND_TIMEOUT=str(SEND_TIMEOUT),
                   FRONT_HEADER_TIMEOUT="3")
    yield server
    server.stop()


def test_clients_that_never_read_lose_their_connections_at_the_send_deadline(capped):
    """2 x FRONT_MAX_CONNECTIONS clients pipeline requests and never read: the server lets go
    of every one within the send deadline (rounds of the cap), new connections are answered at
    once while the attackers still hold their sockets, and the normal load (6 kept-alive clients,
    which the balance spreads) never failed nor waited."""
    port = int(capped.url.rpartition(":")[2])
    with Load(capped.url, clients=6, seconds=60, pause=0.01) as load:
        wait_until(lambda: len(load.answers) >= 10, 30, what="the normal load to start")
        with SlowReaders("127.0.0.1", port, count=2 * CAP) as readers:
            wait_until(lambda: readers.held() == 0, 3 * (SEND_TIMEOUT + SLACK),
                       what="the server to let go of every reader")
            fresh_connections_answered(capped)
        load.stop()
    assert_answered(load)
    assert capped.process.poll() is None, capped.log_tail()


def test_a_head_over_the_limit_gets_431(capped):
    """A head past FRONT_MAX_HEADER_BYTES (the manifest's 16 KiB) is refused with 431; one just
    under it is answered."""
    port = int(capped.url.rpartition(":")[2])
    for padding, status in ((15_000, b"200"), (20_000, b"431")):
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * padding +
                         b"\r\n\r\n")
            assert sock.recv(64).split(b" ")[1] == status, padding


# --- memory: serving in the manifest's 1 GiB -------------------------------------------------

CONFINED = {"FRONT_HEADER_TIMEOUT": "3", "FRONT_BODY_TIMEOUT": "3"}


@pytest.fixture(scope="module")
def confined(tmp_path_factory, trained_models, memory_group) -> Iterator[Serving]:
    """Serving as deployed, in a 1 GiB memory cgroup; header and body deadlines 3 s."""
    server = start(tmp_path_factory.mktemp("front-confined"),
                   {"diamonds-classifier": trained_models.pipeline}, preexec_fn=memory_group.join,
                   **CONFINED)
    yield server
    server.stop()


# Without the header bound, granian buffered up to 417,792 bytes of head per connection, and the
# small bodies read in one call were not counted: these 1,024 connections held ~680 MB.
HEAVY = [Heavy(count=896, head_bytes=410_000, announced=256 * 1024, sent=250 * 1024),
         Heavy(count=128, head_bytes=8 * 1024, announced=2 * MIB, sent=3 * MIB // 2)]


def test_many_slow_senders_with_large_heads_stay_within_the_pods_memory(confined, memory_group,
                                                                        tmp_path):
    """1,024 connections (FRONT_MAX_CONNECTIONS) send 400 KB heads and most of a body, or
    most of 2 MiB, then stall: no OOM kill in 1 GiB, the front never exits, normal clients are
    answered."""
    port = int(confined.url.rpartition(":")[2])
    workers = confined.worker_pids()
    with Load(confined.url, clients=2, seconds=60, pause=0.01) as load:
        wait_until(lambda: len(load.answers) >= 10, 30, what="the normal load to start")
        before = memory_group.usage()
        with cgroup.UsageWatch(memory_group) as watch, \
                HeavySenders("127.0.0.1", port, HEAVY) as senders:
            assert senders.wait_sent(40), "the senders never got their bytes out"
            time.sleep(2.0)  # held, stalled
            fresh_connections_answered(confined, count=4)
        load.stop()
    grown = (watch.peak - before) // MIB
    print(f"the senders grew serving by {grown} MiB, to {watch.peak // MIB} MiB")
    assert memory_group.oom_kills() == 0, f"OOM kills; grown by {grown} MiB"
    assert confined.process.poll() is None, confined.log_tail()
    assert confined.worker_pids() == workers, "a worker died"
    assert_answered(load)
    front = front_from_env({**manifest_settings(tmp_path / "pod"), **CONFINED})
    budget = front.workers * client_memory(front) // MIB
    assert grown <= budget + 64, f"grown by {grown} MiB, the clients' budget is {budget} MiB"


def test_a_leaking_model_gets_its_workers_recycled_never_oom_killed(confined, memory_group,
                                                                   trained_models, tmp_path):
    """A model keeping 256 KiB per call: workers pass FRONT_WORKER_MAX_RSS and are replaced
    gracefully, twice under a normal load; no OOM kill, the front never exits, normal clients
    are answered."""
    model = leaking(trained_models.pickled, tmp_path / "leaking")
    confined.publish("1.1.0", {"diamonds-classifier": model})
    confined.wait_for_version("1.1.0", timeout=60)
    before = confined.log_path.read_text().count("RSS over threshold")

    def recycled() -> int:
        return confined.log_path.read_text().count("RSS over threshold") - before

    with Load(confined.url, clients=2, seconds=60, pause=0.005) as load:
        wait_until(lambda: recycled() >= 2, 50, interval=0.5, what="two workers recycled")
        load.stop()
    assert memory_group.oom_kills() == 0, f"OOM kills; peak {memory_group.peak() // MIB} MiB"
    assert confined.process.poll() is None, confined.log_tail()
    assert_answered(load, at_least=100)


# --- workers killed in a row -----------------------------------------------------------------

def test_workers_killed_in_a_row_never_stop_the_front(capped):
    """A worker SIGKILLed, then its replacement within 5.5 s (granian's crash-loop guard would
    stop the whole front), then again: each is replaced and the front keeps answering."""
    victim = min(capped.worker_pids())
    for _ in range(3):  # each time the replacement of the last one, as soon as it is up
        before = capped.worker_pids()
        os.kill(victim, signal.SIGKILL)
        wait_until(lambda b=before: len(capped.worker_pids() - b) == 1 and
                   len(capped.worker_pids()) == 2, 20, what="a replacement worker")
        (victim,) = capped.worker_pids() - before
        assert capped.process.poll() is None, capped.log_tail()
    # Up before the test ends: a worker stopped while it boots misses the stop (granian).
    port = int(capped.url.rpartition(":")[2])
    wait_until(lambda: is_listening(victim, port), 30, what="the last replacement to listen")
    wait_until(lambda: requests.post(capped.url + "/api/v1/predict", json=VALID,
                                     timeout=5).status_code == 200, 30, what="an answer")
    assert capped.process.poll() is None, capped.log_tail()
    assert capped.log_path.read_text().count('"event":"worker_killed"') >= 3
