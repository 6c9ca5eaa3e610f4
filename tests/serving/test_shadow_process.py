"""The challenger's shadow calls in a process of their own (SHADOW_PROCESS, the default).

A real app, real snapshots: the champion is our pipeline, the challenger the pickled pipeline
wrapped to hang, holding the GIL in a C call, on rows with carat 0.317. Its shadow calls run in a
child of the worker, under SCHED_IDLE: the champion answers at once while the child hangs, the
child is killed at its wall-clock deadline (it burns no CPU) and replaced, and the failure is the
challenger's figure; a child starved of CPU past that deadline is not failed for it.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import threading
import time
import types

import numpy as np
import psutil
import pytest

from devkit.models import HANGING_CARAT, hanging
from devkit.processes import wait_until
from serving.challenger.shadow_process import WALL_FACTOR, ShadowFailed, ShadowProcess, answer_limit
from serving.config import ChallengerConfig
from serving.inputs.schema import DIAMONDS
from serving.model import predictions
from serving.model.predictions import Task
from serving.swap import priority
from tests.serving.test_challenger import KEY_HEADER, challenger_of, settle, stage_candidate
from tests.support.diamonds import VALID

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
    assert os.sched_getscheduler(child.pid) == os.SCHED_IDLE, "it would take CPU from requests"
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


class WritesItsOwnAnswer:
    """A challenger's predictor that, in the shadow child, writes to the worker's socket itself:
    `announce` says 3 GB follow then sends 1 MiB every 20 ms; `trickle` says 1,000 bytes follow
    and sends one every 50 ms (each burns no CPU to speak of: only the wall clock can stop it)."""

    def __init__(self, how: str):
        self.how = how

    def predict(self, matrix):
        """Never returns: the socket gets what `how` says, for 60 s at most."""
        import os
        import stat

        from serving.challenger.shadow_process import LENGTH

        def is_socket(fd: int) -> bool:
            try:
                return stat.S_ISSOCK(os.fstat(fd).st_mode)
            except OSError:
                return False

        fd = next(fd for fd in range(3, 1024) if is_socket(fd))
        announced, chunk, pause = ((3_000_000_000, 1 << 20, 0.02) if self.how == "announce"
                                   else (1000, 1, 0.05))
        os.write(fd, LENGTH.pack(announced))
        ends = time.monotonic() + 60
        while time.monotonic() < ends:
            os.write(fd, b" " * chunk)
            time.sleep(pause)
        os._exit(0)


def hostile_shadow(how: str, deadline: float) -> tuple[ShadowFailed, float]:
    """The failure of one shadow call to a WritesItsOwnAnswer challenger, and its seconds."""
    scorer = ShadowProcess(deadline)
    model = types.SimpleNamespace(version="6.6.6", predictor=WritesItsOwnAnswer(how),
                                  schema=DIAMONDS)
    started = time.monotonic()
    try:
        with pytest.raises(ShadowFailed) as failed:
            scorer.predict(model, np.zeros((3, 4)))
        return failed.value, time.monotonic() - started
    finally:
        scorer.stop()


def test_an_answer_announced_larger_than_its_rows_need_is_refused_before_a_byte():
    """3 GB announced for 3 rows: refused at once naming the size, nothing read (the worker's
    memory), the child killed."""
    failure, seconds = hostile_shadow("announce", deadline=0.25)
    assert f"announced an answer of 3000000000 bytes for 3 rows (at most {answer_limit(3)})" \
        in str(failure)
    assert seconds < 3, seconds


def test_a_trickled_answer_is_cut_at_the_wall_clock_deadline_of_the_whole_answer():
    """One byte every 50 ms keeps each read under its own timeout; the whole answer has
    WALL_FACTOR x PREDICT_TIMEOUT (2 s here) on the clock, then the child is killed."""
    failure, seconds = hostile_shadow("trickle", deadline=0.1)
    assert str(failure) == (f"the challenger took longer than {0.1 * WALL_FACTOR:g}s (not "
                            "counting its waits for a CPU)")
    assert 0.1 * WALL_FACTOR - 0.1 < seconds < 0.1 * WALL_FACTOR + 5, seconds


class BurnsCpu:
    """A challenger's predictor that computes for `seconds` of its own CPU time, then answers
    zeros (a regressor)."""

    def __init__(self, seconds: float):
        self.seconds = seconds

    def predict(self, matrix):
        """Zeros, after burning the CPU time."""
        ends = time.process_time() + self.seconds
        while time.process_time() < ends:
            pass
        return predictions.regressed([0.0] * len(matrix))


def burning_model(seconds: float) -> types.SimpleNamespace:
    return types.SimpleNamespace(version="7.7.7", predictor=BurnsCpu(seconds),
                                 schema=types.SimpleNamespace(task=Task.REGRESSION, classes=()))


def test_a_child_starved_of_cpu_past_its_wall_clock_deadline_still_answers():
    """The child shares its CPU with a busy process for 2 s: under SCHED_IDLE it gets almost
    none of it, so its 5 ms of work outlasts its 0.4 s on the clock, yet waiting for a CPU is not
    counted: it answers once the CPU is free (comparisons get fewer, never false failures)."""
    cpu = min(os.sched_getaffinity(0))
    mine = os.sched_getaffinity(0)
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    scorer = ShadowProcess(0.02)  # 0.02 s of CPU, 0.4 s on the clock
    stop_busy = threading.Timer(2.0, busy.kill)
    try:
        os.sched_setaffinity(busy.pid, {cpu})
        os.sched_setaffinity(0, {cpu})  # this thread's CPU is the child's: it forks from here
        stop_busy.start()
        started = time.monotonic()
        answer = scorer.predict(burning_model(0.005), np.zeros((3, 4)))
        seconds = time.monotonic() - started
    finally:
        os.sched_setaffinity(0, mine)
        stop_busy.cancel()
        busy.kill()
        busy.wait()
        scorer.stop()
    assert list(answer.values) == [0.0, 0.0, 0.0]
    assert seconds > 0.02 * WALL_FACTOR, f"not starved ({seconds:.2f}s): the test proves nothing"


def test_where_sched_idle_is_refused_the_child_runs_at_nice_19_said_once(monkeypatch, caplog):
    """A sandbox refusing SCHED_IDLE: each child still scores, at nice 19; one warning per
    worker, not one per child."""
    def refuse(*_args):
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "sched_setscheduler", refuse)
    monkeypatch.setattr(priority, "_REFUSED", set())
    for _ in range(2):
        scorer = ShadowProcess(0.5)
        try:
            answer = scorer.predict(burning_model(0.0), np.zeros((2, 4)))
            (child,) = [p for p in psutil.Process().children() if p.pid == scorer._pid]
            assert child.nice() == 19
            assert os.sched_getscheduler(child.pid) == os.SCHED_OTHER
        finally:
            scorer.stop()
        assert list(answer.values) == [0.0, 0.0]
    (warning,) = [r for r in caplog.records if r.getMessage() == "cpu_policy_refused"]
    assert warning.fields == {"process": "shadow", "policy": "SCHED_IDLE", "fallback": "nice 19",
                              "error": "Operation not permitted"}
