"""Slots the front's workers share, each held by one live worker: mapped by the master before
it forks, so every worker sees the same memory.

A slot is `fields` ints, the first the holder's pid. Taking one is locked by a POSIX record lock,
which belongs to the process holding it: the kernel drops it if that worker dies mid-take, where
a semaphore would stay taken for every later worker. A dead worker's slot is freed for the next.
"""

from __future__ import annotations

import fcntl
import mmap
import os
import tempfile

from serving.swap.validator import process_alive


class WorkerSlots:
    """`count` slots of `fields` ints each (the first: the holder's pid, 0 when free)."""

    def __init__(self, count: int, fields: int = 1):
        self.count, self.fields = count, fields
        self.memory = mmap.mmap(-1, 4 * count * fields)  # anonymous and MAP_SHARED: one for all
        self.cells = memoryview(self.memory).cast("i")
        # Kept open for the process's life: the workers inherit it.
        self._lock_file = tempfile.TemporaryFile(prefix="serving-slots-")  # noqa: SIM115

    def take(self) -> int | None:
        """Free the slots of dead workers (and this one's), then take the first free slot for
        this process, its other fields zeroed; None if every slot is held by a live worker."""
        pid, cells, width = os.getpid(), self.cells, self.fields
        fcntl.lockf(self._lock_file, fcntl.LOCK_EX)
        try:
            for slot in range(self.count):
                owner = cells[slot * width]
                if owner and (owner == pid or not process_alive(owner)):
                    cells[slot * width:(slot + 1) * width] = _zeros(width)
            for slot in range(self.count):
                if cells[slot * width] == 0:
                    cells[slot * width] = pid
                    return slot
            return None
        finally:
            fcntl.lockf(self._lock_file, fcntl.LOCK_UN)

    def give_back(self, slot: int) -> None:
        """Free this process's slot."""
        if self.cells[slot * self.fields] == os.getpid():
            self.cells[slot * self.fields:(slot + 1) * self.fields] = _zeros(self.fields)


def _zeros(width: int) -> memoryview:
    return memoryview(bytes(4 * width)).cast("i")
