"""CPU slots of the front's workers: taken once, freed by death or a refused pin, never shared."""

from __future__ import annotations

import errno
import fcntl
import os
import signal
import threading
import time

import pytest

from serving.config import PinWorkers
from serving.front import affinity


@pytest.fixture
def slots(monkeypatch):
    """Slots for two CPUs, as the master maps them (this process plays the workers)."""
    shared = affinity.CpuSlots([0, 1])
    monkeypatch.setattr(affinity, "SLOTS", shared)
    return shared


def _take_in_child(slots: affinity.CpuSlots) -> int:
    """The CPU a forked worker takes before it exits (-1: none)."""
    reader, writer = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: take, report, die without cleanup (as a killed worker)
        taken = slots.take()
        os.write(writer, str(-1 if taken is None else taken).encode())
        os._exit(0)
    os.close(writer)
    os.waitpid(pid, 0)
    taken = int(os.read(reader, 16))
    os.close(reader)
    return taken


def test_a_dead_workers_cpu_is_taken_by_the_next_one_and_a_live_ones_never(slots):
    assert _take_in_child(slots) == 0
    assert _take_in_child(slots) == 0, "the first child is dead: its CPU is free again"
    assert slots.take() == 0
    assert _take_in_child(slots) == 1, "CPU 0 is held by a live process (this one)"
    assert slots.take() == 0, "taking again keeps one's own CPU"


def test_every_cpu_held_by_live_workers_is_said_not_pinned(slots):
    slots.owners[0], slots.owners[1] = os.getppid(), os.getppid()
    with pytest.raises(affinity.NotPinned, match="every CPU is held"):
        affinity.pin_this_worker()


def test_a_refused_pin_frees_the_cpu_and_says_why(slots, monkeypatch):
    before = os.sched_getaffinity(0)

    def refuse(task, cpus):
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "sched_setaffinity", refuse)
    with pytest.raises(affinity.NotPinned, match="sched_setaffinity refused: Operation not"):
        affinity.pin_this_worker()
    assert list(slots.owners) == [0, 0], "the CPU is free for another worker"
    assert os.sched_getaffinity(0) == before


def test_without_cpu_affinity_calls_nothing_is_pinned(monkeypatch):
    """An OS without sched_setaffinity (macOS): the front starts, its workers unpinned."""
    monkeypatch.delattr(os, "sched_setaffinity")
    monkeypatch.setattr(affinity, "SLOTS", None)
    assert affinity.share(PinWorkers.ON, 1) is False
    assert affinity.pin_this_worker() is None


def test_a_worker_killed_while_holding_the_slots_lock_leaves_it_free(slots):
    """SIGKILL inside take()'s lock: the kernel drops the lock, the next worker is not stuck."""
    reader, writer = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: hold the lock and wait to be killed
        fcntl.lockf(slots.shared._lock_file, fcntl.LOCK_EX)
        os.write(writer, b"locked")
        time.sleep(60)
        os._exit(0)
    os.close(writer)
    assert os.read(reader, 16) == b"locked"
    os.close(reader)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    taken: list[int | None] = []
    taker = threading.Thread(target=lambda: taken.append(slots.take()), daemon=True)
    taker.start()
    taker.join(10)
    assert taken == [0], "take() waited on a dead worker's lock"


def test_cpus_with_gaps_in_their_numbers_are_the_slots(monkeypatch):
    """A cpuset such as 1,3 (taskset -c 1,3): the workers get CPUs 1 and 3, not 0 and 1."""
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {3, 1})
    monkeypatch.setattr(affinity, "SLOTS", None)
    assert affinity.share(PinWorkers.AUTO, 2) is True
    assert affinity.SLOTS.cpus == [1, 3]
    assert affinity.share(PinWorkers.ON, 3) is False, "more workers than CPUs: none pinned"


def test_threads_that_cannot_be_listed_are_said_not_pinned(slots, monkeypatch):
    """No /proc/self/task (a sandbox): NotPinned and the CPU freed, not a worker that dies."""
    listdir = os.listdir

    def no_proc(path="."):
        if str(path).startswith("/proc"):
            raise FileNotFoundError(2, "No such file or directory", path)
        return listdir(path)

    monkeypatch.setattr(os, "listdir", no_proc)
    with pytest.raises(affinity.NotPinned):
        affinity.pin_this_worker()
    assert list(slots.owners) == [0, 0]


def test_a_refused_lock_is_said_not_pinned(slots, monkeypatch):
    """The slots' record lock refused (ENOLCK): NotPinned naming it, not a dead worker."""

    def refuse(fd, cmd, *args):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "lockf", refuse)
    with pytest.raises(affinity.NotPinned, match="the CPU slots' lock failed: No locks"):
        affinity.pin_this_worker()
    assert list(slots.owners) == [0, 0]
