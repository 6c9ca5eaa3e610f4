"""The challenger's shadow calls in a process of their own (SHADOW_PROCESS, the default).

A real app, real snapshots: the champion is our pipeline, the challenger the pickled pipeline
wrapped to hang, holding the GIL in a C call, on rows with carat 0.317. Its shadow calls run in a
child of the worker: the champion answers at once while the child hangs, the child is killed at
its wall-clock deadline (it burns no CPU) and replaced, and the failure is the challenger's
figure.
"""

from __future__ import annotations

import dataclasses
import time

import psutil

from devkit.models import HANGING_CARAT, hanging
from devkit.processes import wait_until
from serving.config import ChallengerConfig
from tests.serving.conftest import VALID
from tests.serving.test_challenger import KEY_HEADER, challenger_of, settle, stage_candidate

BAD = {**VALID, "carat": HANGING_CARAT}
TIMEOUT = 0.25  # PREDICT_TIMEOUT: a shadow call's CPU time; 20 times that on the clock


def shadow_children(ignored: frozenset[int] = frozenset()) -> list[psutil.Process]:
    """This test process's children scoring for the challenger, but for those of earlier apps."""
    return [p for p in psutil.Process().children()
            if p.name() == "shadow" and p.pid not in ignored]


def test_a_challenger_hanging_with_the_gil_held_costs_only_its_own_figures(
        make_app, publish, model_root, trained_models, tmp_path):
    earlier = frozenset(p.pid for p in shadow_children())  # other tests' apps live on
    publish("1.0.0")
    stage_candidate(model_root, hanging(trained_models.pickled, tmp_path / "gil", how="gil"))
    settings = dataclasses.replace(ChallengerConfig(key_header=KEY_HEADER), shadow_process=True)
    client = settle(make_app(challenger=settings, predict_timeout=TIMEOUT)).test_client()

    def total() -> dict:
        return challenger_of(client)["challenger"]["shadow"]["total"]

    assert client.post("/api/v1/predict", json=VALID, buffered=True).status_code == 200
    wait_until(lambda: total()["compared"] == 1, 30, what="one input compared by the child")
    (child,) = shadow_children(earlier)
    assert child.pid != psutil.Process().pid
    started = time.monotonic()
    hung = client.post("/api/v1/predict", json=BAD, buffered=True)
    assert hung.status_code == 200 and hung.headers["X-Model-Role"] == "champion"
    answers = [client.post("/api/v1/predict", json=VALID, buffered=True) for _ in range(10)]
    assert {a.status_code for a in answers} == {200}
    assert time.monotonic() - started < 5, "the champion waited for the challenger"
    wait_until(lambda: total()["errors"] >= 1, 30, what="the hung call counted as failed")
    wait_until(lambda: not child.is_running() or child.status() == psutil.STATUS_ZOMBIE, 10,
               what="the hung child killed")
    time.sleep(1.1)  # RESTART_PAUSE: a later input gets a new child
    client.post("/api/v1/predict", json=VALID, buffered=True)
    wait_until(lambda: [c.pid for c in shadow_children(earlier)] not in ([], [child.pid]), 30,
               what="a new child")
    assert len(shadow_children(earlier)) == 1
