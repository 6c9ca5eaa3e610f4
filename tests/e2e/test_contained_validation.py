"""A validated model that tries to stop the workers, fork, write or serve, and a label flood,
against serving started as deployed (`python -m serving.front`, secrets in its environment, MPM
on and sending to the local registry's MPM with the real comet_mpm SDK) (issue 23).
"""

from __future__ import annotations

import contextlib
import errno
import os
import threading
import time
from collections import Counter
from pathlib import Path
from signal import SIGCONT, SIGKILL, SIGSTOP

import psutil
import pytest
import requests

from devkit.models import trained_models  # noqa: F401
from devkit.processes import wait_until
from devkit.registry import local_registry_server  # noqa: F401
from devkit.snapshots import build_snapshot
from serving.swap import zygote
from tests.support.diamonds import CLASSIFIER
from tests.support.escapes import attempts, escaping
from tests.support.mpm import model_root, mpm_env
from tests.support.serving_process import Serving, launch

TOKEN = "e2e-contained-reload-token-7a11c0de"
HIDDEN = (b"COMET_API_KEY=", b"RELOAD_TOKEN=", b"RELOAD_TOKEN_FILE=", b"COMET_API_KEY_FILE=")
FLOOD_SECONDS = 8.0
@pytest.fixture(scope="module")
def served(tmp_path_factory, trained_models, local_registry_server):  # noqa: F811
    """Serving 1.0.0 with the reload token and the Comet API key in its environment, MPM on."""
    work = tmp_path_factory.mktemp("contained")
    root = model_root(work)
    build_snapshot(root, {CLASSIFIER: trained_models.pipeline}, "1.0.0")
    server = launch(root, work, token=TOKEN, **mpm_env(local_registry_server))
    try:
        server.wait_for_version("1.0.0", timeout=90)
        yield server
    finally:
        server.stop()


def environ_of(pid: int) -> bytes:
    """A process's initial environment block, as any process of the same user reads it."""
    return Path(f"/proc/{pid}/environ").read_bytes()


def test_a_validated_model_can_neither_stop_the_workers_nor_fork_write_or_serve(
        served: Serving, trained_models, local_registry_server, tmp_path):  # noqa: F811
    """Its load sends SIGSTOP to every worker and SIGKILL to the master, tries kill(-1), binding
    the public port, 50 forks, a 2 GiB file and a 1 GiB memfd: each fails with EPERM and the
    version is refused saying so; every worker answers throughout, from the champion; the
    validation saw no secret; /proc/<pid>/environ of master, warm validator and workers holds
    neither the API key nor the token."""
    port = int(served.url.rpartition(":")[2])
    master, workers = served.master_pid(), sorted(served.worker_pids())
    big = tmp_path / "big"
    targets = [*workers, master]
    stops = escaping(trained_models.pickled, tmp_path / "stops", port, workers, SIGSTOP, big)
    kills = escaping(trained_models.pickled, tmp_path / "kills", port, [master], SIGKILL, big)
    try:
        stopping = served.validate(served.stage("6.0.0", {CLASSIFIER: stops}))
        killing = served.validate(served.stage("6.0.1", {CLASSIFIER: kills}))
        answers = [served.predict() for _ in range(4 * len(workers))]
    finally:  # without the filter: give the workers back to the tests that follow
        for pid in targets:
            with contextlib.suppress(OSError):
                os.kill(pid, SIGCONT)
    seen = attempts(stopping.json()["reason"]) | attempts(killing.json()["reason"])
    assert stopping.status_code == killing.status_code == 422
    assert seen == {"env": [], "proc": [], "kill everyone": errno.EPERM,
                    **{f"kill {pid}": errno.EPERM for pid in targets}, "bind": errno.EPERM,
                    "fork": errno.EPERM, "write": errno.EPERM, "memfd": errno.EPERM}
    assert not big.exists()
    assert all(a.status_code == 200 for a in answers)
    assert {a.headers["X-Model-Version"] for a in answers} == {"1.0.0"}
    assert served.master_pid() == master and sorted(served.worker_pids()) == workers
    warm = [p.pid for p in psutil.Process(master).children() if p.name() == zygote.PROCESS_NAME]
    assert len(warm) == 1 and not psutil.Process(warm[0]).children()
    secrets = (TOKEN.encode(), local_registry_server.api_key.encode())
    for pid in [master, *warm, *workers]:
        block = environ_of(pid)
        assert not any(s in block for s in (*secrets, *HIDDEN)), pid


def _flood(url: str, real: str, stop: float, statuses: Counter, messages: Counter) -> None:
    """Made-up ids and versions, and a real id moved to other versions, until `stop`."""
    session = requests.Session()
    n = 0
    while time.monotonic() < stop:
        n += 1
        fake = f"{n:08x}{time.monotonic_ns():024x}"[-32:]
        body = [{"prediction_id": fake, "label": "Gold", "version": f"{n}.0.0"},
                {"prediction_id": fake, "label": "Gold"},
                {"prediction_id": real, "label": "Gold", "version": f"0.{n}.0"}][n % 3]
        answer = session.post(url + "/api/v1/labels", json=body, timeout=10)
        statuses[answer.status_code] += 1
        if answer.status_code == 400:
            messages[answer.json()["errors"][0]["message"].split(" for version")[0]] += 1


def worker_figures(served: Serving) -> tuple[int, int]:
    """(threads, RSS bytes) summed over the workers."""
    workers = [psutil.Process(pid) for pid in served.worker_pids()]
    return sum(w.num_threads() for w in workers), sum(w.memory_info().rss for w in workers)


def mpm_counts(registry) -> dict[str, dict]:
    """The local MPM's counts per model version."""
    answer = requests.get(registry.url + "/mpm/local/counts", timeout=10).json()
    return {m["modelVersion"]: m for m in answer["models"]}


def events_of(registry) -> set[str]:
    """The prediction ids of the latest events the local MPM received."""
    answer = requests.get(registry.url + "/mpm/local/events", params={"limit": 1000},
                          headers=registry.headers, timeout=10).json()
    return {e["predictionId"] for e in answer["items"] if e["kind"] == "event"}


def test_a_label_flood_is_refused_and_costs_no_prediction_event(
        served: Serving, local_registry_server):  # noqa: F811
    """Made-up ids and versions from 3 clients for 8 s: each a 400 naming the id, no 5xx; MPM
    sees no new version; the workers' threads and memory stay flat; the predictions made
    meanwhile reach MPM (loss < 5%); a real label still joins its event."""
    warm = [served.predict() for _ in range(20)]
    real = warm[-1].json()
    wait_until(lambda: real["prediction_id"] in events_of(local_registry_server), timeout=30,
               what="the warm-up's events in MPM")  # a label joins an event already there
    assert served.session.post(served.url + "/api/v1/labels", timeout=10, json={
        "prediction_id": real["prediction_id"], "label": real["label"]}).status_code == 202
    wait_until(lambda: mpm_counts(local_registry_server).get("1.0.0", {}).get("labelsJoined"),
               timeout=30, what="the real label joined")
    before = mpm_counts(local_registry_server)["1.0.0"]["events"]
    threads, rss = worker_figures(served)
    statuses, messages = Counter(), Counter()
    stop = time.monotonic() + FLOOD_SECONDS
    flooders = [threading.Thread(target=_flood, args=(served.url, real["prediction_id"], stop,
                                                      statuses, messages)) for _ in range(3)]
    for flooder in flooders:
        flooder.start()
    made = 0
    while time.monotonic() < stop:
        assert served.predict().status_code == 200
        made += 1
    for flooder in flooders:
        flooder.join(30)
    assert set(statuses) == {400} and statuses[400] > 100, statuses
    assert set(messages) == {"was not issued by this service"}, messages
    wait_until(lambda: mpm_counts(local_registry_server)["1.0.0"]["events"] - before
               >= 0.95 * made, timeout=30, what=f"95% of {made} prediction events in MPM")
    assert set(mpm_counts(local_registry_server)) == {"1.0.0"}
    threads_after, rss_after = worker_figures(served)
    assert threads_after <= threads + 2, (threads, threads_after)
    assert rss_after - rss < 32 * 1024 * 1024, (rss, rss_after)
