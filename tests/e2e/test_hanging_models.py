"""Models that hang on some inputs or stall their loading, in the whole pod (issue 23): only
the inputs that hang fail.

The champion is our pickled pipeline wrapped so that a row with carat 0.317 never returns
(devkit.models.hanging): it passes validation (its golden rows answer) and is served.
Clients whose every tenth request carries such a row get 504 for those and 200, mostly within
a second, for the rest; the front neither exits nor loses a worker. A hang the alarm cannot
stop (a C call holding the GIL) costs its worker, killed by the master past PREDICT_TIMEOUT + 1 s,
and the champion is reported as hanging. A challenger hanging with the GIL held in shadow costs
only its own figures (it runs in a process of its own); one hanging in the canary stops the
canary for every worker, a replacement included, and the champion answers. A 33 MB metadata.json
is refused at validation, naming the file and the cap, while requests are answered.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from devkit.load import VALID
from devkit.models import HANGING_CARAT, hanging
from devkit.processes import wait_until
from model_contract import layout
from serving.model.loader import MAX_METADATA_BYTES

BAD = {**VALID, "carat": HANGING_CARAT}
CLIENTS, SECONDS = 2, 5.0


@dataclass(frozen=True)
class Sent:
    """One request: whether it carried the hanging row, its status (0: no answer), its time."""

    bad: bool
    status: int
    seconds: float


def booted_workers(pod) -> int:
    """How many workers have booted so far (a dead worker is replaced by a new one)."""
    return len(pod.serving_events("Booting worker"))


def both_booted(pod) -> int:
    """booted_workers once both have booted (the pod is ready once one answers)."""
    return wait_until(lambda: (n := booted_workers(pod)) >= 2 and n, 30, what="two workers")


def clients(url: str, every: int, seconds: float = SECONDS,
            stop: threading.Event | None = None) -> list[Sent]:
    """CLIENTS threads for `seconds` (or until `stop`), each sending BAD as every `every`-th
    request, else VALID."""
    stop = stop or threading.Event()
    sent: list[Sent] = []
    lock = threading.Lock()

    def client(number: int) -> None:
        with requests.Session() as session:
            count, ends = number, time.monotonic() + seconds
            while time.monotonic() < ends and not stop.is_set():
                count += 1
                bad = count % every == 0
                started = time.monotonic()
                try:
                    status = session.post(url, json=BAD if bad else VALID, timeout=10).status_code
                except requests.RequestException:
                    status = 0
                with lock:
                    sent.append(Sent(bad, status, time.monotonic() - started))
                time.sleep(0.01)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(seconds + 30)
    return sent


def assert_normal_clients_served(good: list[Sent]) -> None:
    """Every normal request answered 200, at least 95% of them within a second."""
    assert len(good) >= 40, len(good)
    assert {s.status for s in good} == {200}, [s for s in good if s.status != 200][:5]
    within = sum(s.seconds <= 1.0 for s in good) / len(good)
    assert within >= 0.95, f"{within:.1%} of normal requests answered within 1 s"


def roles_of_workers(pod) -> dict[int, dict]:
    """The `roles` of /api/v1/model by worker pid, from a few calls (both workers answer)."""
    seen = {}
    for _ in range(12):
        answer = pod.served_model()
        seen[answer["worker"]] = answer["roles"]
    return seen


def wait_challenger(pod, version: str) -> None:
    """Wait until every worker holds this challenger."""
    def held() -> bool:
        seen = roles_of_workers(pod)
        return len(seen) == 2 and all((r["challenger"] or {}).get("version") == version
                                      for r in seen.values())

    wait_until(held, 90, what=f"challenger {version} on both workers")


def unstage(pod, version: str) -> None:
    """Take the version out of Staging and wait until `candidate` is gone."""
    pod.registry.set_status(pod.model, version, "None")
    wait_until(lambda: layout.candidate_snapshot_id(pod.root) is None, 60,
               what="candidate removed")


@pytest.fixture
def hanging_champion(pod, trained_models, tmp_path) -> Iterator[str]:
    """Serve the hanging model as champion; afterwards, the pipeline again."""
    version = pod.promote(hanging(trained_models.pickled, tmp_path / "hanging"))
    pod.wait_served(version)
    yield version
    pod.wait_served(pod.promote())


def test_a_champion_hanging_on_one_row_in_ten_fails_only_those_requests(pod, hanging_champion):
    workers = both_booted(pod)
    sent = clients(pod.serving.url + "/api/v1/predict", every=10)
    bad = [s for s in sent if s.bad]
    assert len(bad) >= 4 and {s.status for s in bad} == {504}
    assert_normal_clients_served([s for s in sent if not s.bad])
    assert pod.serving.process.poll() is None, "the front exited"
    assert booted_workers(pod) == workers, "a worker was replaced"
    assert pod.served_model()["roles"]["champion_overrun"]["role"] == "champion"
    assert 'serving_champion_overran 1.0' in pod.serving_metrics()


def test_a_hang_no_alarm_can_stop_costs_one_worker_replaced_in_seconds(pod, trained_models,
                                                                        tmp_path):
    """A C call holding the GIL: the master kills the worker; the other keeps answering."""
    version = pod.promote(hanging(trained_models.pickled, tmp_path / "gil", how="gil"))
    pod.wait_served(version)
    try:
        workers = both_booted(pod)
        started = time.monotonic()
        with pytest.raises(requests.RequestException):  # its worker dies: no answer at all
            requests.post(pod.serving.url + "/api/v1/predict", json=BAD, timeout=30)
        assert time.monotonic() - started < 10
        killed = wait_until(lambda: pod.serving_events("model_call_hung"), 10,
                            what="the master's kill")
        assert killed[-1]["role"] == "champion"
        # the killed call counts as the champion's failure: the promotion guard's error rate
        assert _champion_failed(pod, killed[-1]["snapshot"]) == 1
        wait_until(lambda: booted_workers(pod) == workers + 1, 30, what="a new worker")
        answers = [requests.post(pod.serving.url + "/api/v1/predict", json=VALID, timeout=10)
                   for _ in range(10)]
        assert {a.status_code for a in answers} == {200}
        overrun = pod.served_model()["roles"]["champion_overrun"]
        assert overrun["worker_killed"] is True
        assert pod.serving.process.poll() is None, "the front exited"
    finally:
        pod.wait_served(pod.promote())


def test_a_shadow_challenger_looping_for_ever_costs_the_champion_nothing(pod, trained_models,
                                                                          tmp_path):
    """A Python loop holding the GIL in the challenger: its child burns its CPU budget and is
    killed by the kernel (SIGPROF); the champion's requests never wait for it."""
    version = pod.promote(hanging(trained_models.pickled, tmp_path / "loop", how="loop"),
                          status="Staging")
    try:
        wait_challenger(pod, version)
        workers = both_booted(pod)
        sent = clients(pod.serving.url + "/api/v1/predict", every=10)
        assert_normal_clients_served(sent)  # the rows that hang the challenger too: champion's
        assert booted_workers(pod) == workers and pod.serving.process.poll() is None
        # Its child runs on CPU nothing else wants (SCHED_IDLE): on a machine others keep busy
        # it burns its PREDICT_TIMEOUT of CPU slowly, and waiting for a CPU is not its failure.
        wait_until(lambda: pod.served_model()["roles"]["challenger"]["all_workers"]["errors"],
                   90, what="the challenger's failures counted")
    finally:
        unstage(pod, version)


def test_a_hanging_canary_is_stopped_on_every_worker_for_good(pod, trained_models, tmp_path):
    pod.relaunch_serving(CANARY_PERCENT="100")
    version = pod.promote(hanging(trained_models.pickled, tmp_path / "canary"), status="Staging")
    try:
        wait_challenger(pod, version)
        assert {r["mode"] for r in roles_of_workers(pod).values()} == {"canary"}
        hung = requests.post(pod.serving.url + "/api/v1/predict", json=BAD, timeout=10)
        assert hung.status_code == 200 and hung.headers["X-Model-Role"] == "champion"
        wait_until(lambda: {r["mode"] for r in roles_of_workers(pod).values()} ==
                   {"canary-stopped"}, 10, what="the canary stopped on both workers")
        # A replacement worker starts with the canary stopped (the guard outlives a worker).
        old = set(roles_of_workers(pod))
        os.kill(min(old), signal.SIGKILL)
        seen = wait_until(lambda: (r := roles_of_workers(pod)) and set(r) - old and r, 60,
                          what="a replacement worker")
        assert {r["mode"] for r in seen.values()} == {"canary-stopped"}
        sent = clients(pod.serving.url + "/api/v1/predict", every=10)
        assert_normal_clients_served(sent)
        assert pod.serving.process.poll() is None, "the front exited"
    finally:
        unstage(pod, version)


def test_a_33_mb_metadata_file_is_refused_by_name_and_requests_never_wait(pod, tmp_path):
    folder = tmp_path / "big"
    shutil.copytree(pod.folders.pipeline, folder)
    meta = json.loads((folder / "metadata.json").read_text())
    meta["training"]["notes"] = "x" * (33 * 1024 * 1024)
    (folder / "metadata.json").write_text(json.dumps(meta))
    sent: list[Sent] = []
    stop = threading.Event()
    load = threading.Thread(target=lambda: sent.extend(
        clients(pod.serving.url + "/api/v1/predict", every=10 ** 9, seconds=60, stop=stop)))
    load.start()
    try:
        version = pod.promote(folder)
        rejection = wait_until(lambda: pod.rejection_of(version), 60,
                               what=f"the rejection of {version}")
        assert f"metadata.json is larger than the {MAX_METADATA_BYTES // 1024} KiB" in \
            rejection["reason"]
    finally:
        stop.set()
        load.join(60)
    assert_normal_clients_served(sent)


def _champion_failed(pod, snapshot: str) -> float:
    """serving_champion_requests_total{outcome="failed"} of one snapshot."""
    return sum(sample.value for family in text_string_to_metric_families(pod.serving_metrics())
               for sample in family.samples
               if sample.name == "serving_champion_requests_total"
               and sample.labels["snapshot"] == snapshot
               and sample.labels["outcome"] == "failed")
