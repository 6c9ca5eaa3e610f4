"""Models that hang on some inputs, served by the whole pod (issue 23): only those inputs fail.

The champion is our pickled pipeline wrapped so that a row with carat 0.317 never returns
(tests.support.models.hanging): it passes validation (its golden rows answer) and is served.
Clients whose every tenth request carries such a row get 504 for those and 200, mostly within
a second, for the rest; the front neither exits nor loses a worker. A hang the alarm cannot
stop (a C call holding the GIL) costs its worker, killed by the master past PREDICT_TIMEOUT + 1 s,
and the champion is reported as hanging.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import requests

from tests.support.load import VALID
from tests.support.models import HANGING_CARAT, hanging
from tests.support.processes import wait_until

BAD = {**VALID, "carat": HANGING_CARAT}
CLIENTS, SECONDS = 2, 8.0


@dataclass(frozen=True)
class Sent:
    """One request: whether it carried the hanging row, its status (0: no answer), its time."""

    bad: bool
    status: int
    seconds: float


def booted_workers(pod) -> int:
    """How many workers have booted so far (a dead worker is replaced by a new one)."""
    return len(pod.serving_events("Booting worker"))


def clients(url: str, every: int) -> list[Sent]:
    """CLIENTS threads for SECONDS, each sending BAD as every `every`-th request, else VALID."""
    sent: list[Sent] = []
    lock = threading.Lock()

    def client(number: int) -> None:
        with requests.Session() as session:
            count, ends = number, time.monotonic() + SECONDS
            while time.monotonic() < ends:
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
        thread.join(SECONDS + 30)
    return sent


@pytest.fixture
def hanging_champion(pod, trained_models, tmp_path) -> Iterator[str]:
    """Serve the hanging model as champion; afterwards, the pipeline again."""
    version = pod.promote(hanging(trained_models.pickled, tmp_path / "hanging"))
    pod.wait_served(version)
    yield version
    pod.wait_served(pod.promote())


def test_a_champion_hanging_on_one_row_in_ten_fails_only_those_requests(pod, hanging_champion):
    workers = booted_workers(pod)
    sent = clients(pod.serving.url + "/api/v1/predict", every=10)
    bad = [s for s in sent if s.bad]
    good = [s for s in sent if not s.bad]
    assert len(bad) >= 4 and len(good) >= 40, (len(bad), len(good))
    assert {s.status for s in bad} == {504}
    assert {s.status for s in good} == {200}, [s for s in good if s.status != 200][:5]
    within = sum(s.seconds <= 1.0 for s in good) / len(good)
    assert within >= 0.95, f"{within:.1%} of normal requests answered within 1 s"
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
        workers = booted_workers(pod)
        started = time.monotonic()
        with pytest.raises(requests.RequestException):  # its worker dies: no answer at all
            requests.post(pod.serving.url + "/api/v1/predict", json=BAD, timeout=30)
        assert time.monotonic() - started < 10
        killed = wait_until(lambda: pod.serving_events("model_call_hung"), 10,
                            what="the master's kill")
        assert killed[-1]["role"] == "champion"
        wait_until(lambda: booted_workers(pod) == workers + 1, 30, what="a new worker")
        answers = [requests.post(pod.serving.url + "/api/v1/predict", json=VALID, timeout=10)
                   for _ in range(10)]
        assert {a.status_code for a in answers} == {200}
        overrun = pod.served_model()["roles"]["champion_overrun"]
        assert overrun["worker_killed"] is True
        assert pod.serving.process.poll() is None, "the front exited"
    finally:
        pod.wait_served(pod.promote())
