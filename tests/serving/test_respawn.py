"""The front's crash-loop guard: a worker killed by a signal is never a crash loop, one that
exited by itself still is (granian's rule), read as granian's guard reads it."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from serving.front.respawn import RespawnTimes, killed_by_signal


def _server(*exitcodes: int | None) -> SimpleNamespace:
    """What the guard reads of granian's server: its workers' processes' exit codes."""
    return SimpleNamespace(wrks=[SimpleNamespace(inner=SimpleNamespace(exitcode=code))
                                 for code in exitcodes])


@pytest.mark.parametrize(("code", "named"), [(-9, "SIGKILL"), (-15, "SIGTERM"), (-11, "SIGSEGV"),
                                             (1, None), (0, None), (None, None)])
def test_only_a_death_by_signal_is_named(code, named):
    """A signal's name for a negative exit code; None for an exit, or a worker still alive."""
    assert killed_by_signal(_server(code), 0) == named


def test_the_guard_sees_a_killed_worker_as_never_respawned_and_an_exited_one_as_respawned():
    """granian exits if `get(idx, 0)` is within 5.5 s: a killed worker answers 0 (replaced),
    one that exited answers when it was respawned (the front stops, as granian would)."""
    times = RespawnTimes(_server(-9, 3))
    times[0], times[1] = 100.0, 100.0
    assert times.get(0, 0) == 0
    assert times.get(1, 0) == 100.0
    assert times.get(5, 0) == 0  # no such worker: granian's own answer
