"""Each worker on a CPU of its own, when the front has one CPU per worker.

A worker is two threads that hand every request to each other: granian's I/O thread and the
Python thread running the app. On CPUs that are all busy (the workers, their I/O threads, the
clients), each hand-over to a thread on another CPU waits for that CPU; with both threads of a
worker on one CPU, it is a wake-up on the CPU already running. Measured side by side on 2 CPUs
(docs/serving.md, "The front"): single-prediction p99 0.88x of the same front unpinned,
throughput +2.6%. FRONT_PIN_WORKERS=auto pins only when the CPUs this process may run on number
exactly WEB_CONCURRENCY (a pod with an exclusive cpuset, a machine of its own): on a shared pool
of CPUs a pinned worker could not move away from a CPU another program keeps busy. The slots
are mapped by the master before it forks; a replacement takes the CPU of the worker it replaces.
"""

from __future__ import annotations

import contextlib
import mmap
import multiprocessing
import os

from serving.config import PinWorkers
from serving.validator import process_alive

TAKE_WAIT = 1.0  # seconds: a worker killed while taking a CPU must not stall its replacements


def should_pin(mode: PinWorkers, cpus: int, workers: int) -> bool:
    """Whether to give each worker a CPU of its own (never two workers on one)."""
    if mode is PinWorkers.OFF:
        return False
    return cpus == workers if mode is PinWorkers.AUTO else cpus >= workers


class CpuSlots:
    """Which worker holds each CPU: one pid per CPU, in memory shared by the workers."""

    def __init__(self, cpus: list[int]):
        self.cpus = cpus
        self.memory = mmap.mmap(-1, 4 * len(cpus))  # anonymous and MAP_SHARED: one for all
        self.owners = memoryview(self.memory).cast("i")
        self.lock = multiprocessing.Lock()

    def take(self) -> int | None:
        """A CPU no other live worker holds, now this process's; None if there is none."""
        pid = os.getpid()
        if not self.lock.acquire(timeout=TAKE_WAIT):
            return None
        try:
            for slot, cpu in enumerate(self.cpus):
                owner = self.owners[slot]
                if owner in (0, pid) or not process_alive(owner):
                    self.owners[slot] = pid
                    return cpu
            return None
        finally:
            self.lock.release()


SLOTS: CpuSlots | None = None


def share(mode: PinWorkers, workers: int) -> bool:
    """In the master, before the fork: map the CPU slots if workers are to be pinned."""
    global SLOTS
    cpus = sorted(os.sched_getaffinity(0))
    SLOTS = CpuSlots(cpus) if should_pin(mode, len(cpus), workers) else None
    return SLOTS is not None


def pin_this_worker() -> int | None:
    """In a worker, before it starts threads of its own: take a CPU and run every thread of
    this process on it (threads started later inherit it); the CPU, or None if not pinned."""
    cpu = SLOTS.take() if SLOTS is not None else None
    if cpu is not None:
        for task in os.listdir("/proc/self/task"):  # granian's I/O thread is already running
            with contextlib.suppress(OSError):  # a thread that ended meanwhile
                os.sched_setaffinity(int(task), {cpu})
    return cpu
