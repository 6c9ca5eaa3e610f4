"""One background thread per process: started on first use, and again in a forked child.

The front's master (or the benchmarks' gunicorn) forks workers from a parent that may already
have started a thread; a child inherits the parent's `threading.Thread` object but not the
thread, so the pid it was started in is kept and checked.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable


class ProcessThread:
    """A daemon thread owned by the process that started it; `ensure_running` is idempotent."""

    def __init__(self, name: str, target: Callable[[], None],
                 prepare: Callable[[], None] = lambda: None):
        """`prepare` runs, under the lock, before each start (fresh per-process state)."""
        self._name, self._target, self._prepare = name, target, prepare
        self._thread: threading.Thread | None = None
        self._pid: int | None = None
        self._lock = threading.Lock()

    @property
    def thread(self) -> threading.Thread | None:
        """The thread last started (possibly by the parent of this process)."""
        return self._thread

    def started_here(self) -> bool:
        """Whether this process has started the thread (alive or not)."""
        return self._thread is not None and self._pid == os.getpid()

    def running(self) -> bool:
        """Whether the thread of this process is alive."""
        thread = self._thread
        return thread is not None and self._pid == os.getpid() and thread.is_alive()

    def ensure_running(self) -> bool:
        """Start the thread unless this process's one is alive; True if it was started now."""
        if self.running():
            return False
        with self._lock:
            if self.running():
                return False
            self._prepare()
            self._pid = os.getpid()
            self._thread = threading.Thread(target=self._target, name=self._name, daemon=True)
            self._thread.start()
            return True

    def join(self, timeout: float) -> None:
        """Wait for this process's thread to end (a forked child has none to wait for)."""
        if self.started_here():
            assert self._thread is not None
            self._thread.join(timeout)
