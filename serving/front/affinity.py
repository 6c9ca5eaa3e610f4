"""Each worker on a CPU of its own, when the front has one CPU per worker.

A worker is two threads that hand every request to each other: granian's I/O thread and the
Python thread running the app. On CPUs that are all busy (the workers, their I/O threads, the
clients), each hand-over to a thread on another CPU waits for that CPU; with both threads of a
worker on one CPU, it is a wake-up on the CPU already running (bench part 8, docs/serving.md).
FRONT_PIN_WORKERS=auto pins only when the CPUs this process may run on number exactly
WEB_CONCURRENCY (an exclusive cpuset, or a node or machine of that size); with more CPUs than
workers a pinned worker could not move away from a CPU another program keeps busy. The slots
are mapped by the master before it forks; a replacement takes the CPU of the worker it replaces.
"""

from __future__ import annotations

import os

from serving.config import PinWorkers

from .slots import WorkerSlots

SWEEPS = 5  # listings of this process's threads: one started while pinning is caught next time


class NotPinned(Exception):
    """Pinning was asked for and could not be done; the worker runs on any CPU."""


def should_pin(mode: PinWorkers, cpus: int, workers: int) -> bool:
    """Whether to give each worker a CPU of its own (never two workers on one)."""
    if mode is PinWorkers.OFF:
        return False
    return cpus == workers if mode is PinWorkers.AUTO else cpus >= workers


class CpuSlots:
    """Which worker holds each CPU: a worker slot per CPU (serving.front.slots)."""

    def __init__(self, cpus: list[int]):
        self.cpus = cpus
        self.shared = WorkerSlots(len(cpus))
        self.owners = self.shared.cells

    def take(self) -> int | None:
        """A CPU no other live worker holds, now this process's; None if there is none."""
        slot = self.shared.take()
        return None if slot is None else self.cpus[slot]

    def give_back(self, cpu: int) -> None:
        """Free this process's CPU (its pinning failed)."""
        self.shared.give_back(self.cpus.index(cpu))


SLOTS: CpuSlots | None = None


def share(mode: PinWorkers, workers: int) -> bool:
    """In the master, before the fork: map the CPU slots if workers are to be pinned."""
    global SLOTS
    if not hasattr(os, "sched_setaffinity"):  # not Linux: the OS places the threads
        SLOTS = None
        return False
    cpus = sorted(os.sched_getaffinity(0))
    SLOTS = CpuSlots(cpus) if should_pin(mode, len(cpus), workers) else None
    return SLOTS is not None


def pin_this_worker() -> int | None:
    """Run every thread of this worker on a CPU of its own: the CPU, None if not asked for;
    NotPinned saying why if asked for and not done (call before the app starts threads)."""
    if SLOTS is None:
        return None
    try:
        cpu = SLOTS.take()
    except OSError as exc:  # the lock refused (ENOLCK on some file systems): serve unpinned
        raise NotPinned(f"the CPU slots' lock failed: {exc.strerror or exc}") from None
    if cpu is None:  # granian's reload starts new workers before the old ones stop
        raise NotPinned("every CPU is held by a live worker")
    try:
        _set_all_threads({cpu})
    except OSError as exc:  # a sandbox refusing sched_setaffinity, a cpuset changed since
        SLOTS.give_back(cpu)
        _set_all_threads(set(SLOTS.cpus), strict=False)
        raise NotPinned(f"sched_setaffinity refused: {exc.strerror or exc}") from None
    return cpu


def _set_all_threads(cpus: set[int], strict: bool = True) -> None:
    """Each thread of this process on these CPUs, again until no new thread shows up."""
    done: set[int] = set()
    for _ in range(SWEEPS):
        try:
            tasks = {int(task) for task in os.listdir("/proc/self/task")} - done
        except OSError:  # no /proc (a sandbox): the threads cannot be listed
            if strict:
                raise
            return
        if not tasks:
            return
        for task in tasks:
            try:
                os.sched_setaffinity(task, cpus)
            except ProcessLookupError:
                pass  # the thread ended meanwhile
            except OSError:
                if strict:
                    raise
        done |= tasks
