"""The hard deadline of model calls: the master kills a worker whose call could not be stopped.

A worker stops an overrunning model call itself (serving.swap.deadline: an alarm raises inside the
model's code), except when the call never lets Python run: a C call that holds the GIL. Such a
worker cannot even run its own watchdog. So each worker stamps its model calls (when it began,
which role) in memory the master mapped before the fork, and a thread of the master, which has a
GIL of its own, kills the worker whose call has run HARD_DEADLINE_GRACE past PREDICT_TIMEOUT;
granian starts another at once. The master also writes the overrun record (serving.swap.overruns)
that the dead worker could not, so a challenger's canary stays stopped and a champion shows as
hanging.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from pathlib import Path

from model_contract import layout, manifest
from model_contract.logs import EventLogger
from serving.swap import deadline, overruns

from .slots import WorkerSlots

log = EventLogger("serving.front.master")  # configured in __main__.LOG_CONFIG
WRAP = 2 ** 31  # stamps are milliseconds of the monotonic clock, modulo this (an int cell)
LOOK_EVERY = 0.1  # seconds between the master's looks at the stamps
ROLES = {deadline.CHAMPION: "champion", deadline.CHALLENGER: "challenger"}
LINKS = {deadline.CHAMPION: "current", deadline.CHALLENGER: "candidate"}


def _now_ms() -> int:
    return int(time.monotonic() * 1000) % WRAP or 1  # 0 means "no call"


def _elapsed_ms(started: int) -> int:
    """Milliseconds since a stamp, the clock read after the stamp was (a call stamped after
    the clock was read would look WRAP old: its healthy worker was killed, measured in CI);
    more than WRAP // 2 still means a stamp from the future, which is never overdue."""
    return (_now_ms() - started) % WRAP


class ModelCalls:
    """One slot (pid, started, role) per worker; what a worker's model call is, and since when."""

    def __init__(self, slots: int):
        self.shared = WorkerSlots(slots, fields=3)
        self.cells = self.shared.cells
        self.mine: int | None = None

    def claim(self) -> bool:
        """Take this worker's slot (False: none free, or the lock refused; no hard deadline)."""
        try:
            self.mine = self.shared.take()
        except OSError:
            self.mine = None
        return self.mine is not None

    def started(self, role: int) -> None:
        """This worker's model call of `role` begins."""
        if self.mine is not None:
            base = self.mine * 3
            self.cells[base + 2] = role
            self.cells[base + 1] = _now_ms()

    def ended(self) -> None:
        """This worker's model call has ended."""
        if self.mine is not None:
            self.cells[self.mine * 3 + 1] = 0

    def overdue(self, seconds: float) -> list[tuple[int, int]]:
        """(pid, role) of every worker whose call has run longer than `seconds`; their stamps
        cleared (each is killed once)."""
        found, cells = [], self.cells
        for slot in range(self.shared.count):
            pid, started, role = cells[slot * 3:slot * 3 + 3]
            if pid and started and seconds * 1000 < _elapsed_ms(started) < WRAP // 2:
                cells[slot * 3 + 1] = 0
                found.append((pid, role))
        return found


CALLS: ModelCalls | None = None


def share(workers: int) -> None:
    """In the master, before the fork: the slots every worker will stamp."""
    global CALLS
    CALLS = ModelCalls(slots=2 * workers)  # room for a replacement before the dead is reaped


def watch(calls: ModelCalls, hard_seconds: float, model_root: Path | None,
          folder: Path) -> None:
    """In the master: a thread that kills workers whose model call outlives hard_seconds."""
    threading.Thread(target=_watch, args=(calls, hard_seconds, model_root, folder),
                     name="model-call-deadline", daemon=True).start()


def _watch(calls: ModelCalls, hard_seconds: float, model_root: Path | None,
           folder: Path) -> None:
    while True:
        time.sleep(LOOK_EVERY)
        for pid, role in calls.overdue(hard_seconds):
            kill_hung(pid, role, hard_seconds, model_root, folder)


def kill_hung(pid: int, role: int, hard_seconds: float, model_root: Path | None,
              folder: Path) -> None:
    """Kill a worker stuck in a model call; record the overrun of the snapshot it served."""
    name = ROLES.get(role, "champion")
    snapshot = layout.linked_snapshot_id(model_root, LINKS.get(role, "current")) \
        if model_root is not None else None
    if snapshot is not None and role == deadline.CHAMPION:
        _count_failed(model_root, snapshot)
    if snapshot is not None:
        with contextlib.suppress(OSError):
            overruns.record(folder, overruns.Overrun(
                name, snapshot, f"a model call ran {hard_seconds:g}s and could not be stopped: "
                                "its worker was killed", time.time(), worker_killed=True))
    # Whoever reads the event finds the failure counted and the overrun recorded. The kill comes
    # last: granian forks the replacement as soon as the worker dies, and a fork taken while this
    # thread imports or writes the metrics would give the new worker a lock no one releases.
    log.error("model_call_hung", pid=pid, role=name, snapshot=snapshot, seconds=hard_seconds)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def _count_failed(model_root: Path, snapshot: str) -> None:
    """The killed call as a failed request of its champion, which the promotion guard reads."""
    try:
        versions = manifest.read(layout.snapshot_path(model_root, snapshot)).versions
    except manifest.ManifestError:
        return  # pruned meanwhile: no champion figures to add to
    from serving.telemetry import champion_metrics  # here: the metrics folder is chosen by now

    champion_metrics.killed(snapshot, versions)
