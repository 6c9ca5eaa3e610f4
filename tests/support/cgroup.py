"""A memory cgroup for a process tree, as a container's memory limit is enforced.

    with MemoryCgroup("serving-oom", 1024 * MIB) as group:
        process = subprocess.Popen(argv, preexec_fn=group.join)   # it and all it forks
        ...
        group.oom_kills(), group.peak()                            # kernel OOM kills, peak bytes
        with UsageWatch(group) as watch: ...                       # watch.peak: the most held

cgroup v1 (`/sys/fs/cgroup/memory`) or v2 (`/sys/fs/cgroup`), as root. `available()` says
whether this machine lets us make one; tests skip with its reason otherwise. The group is
removed on exit (its processes must have ended: stop them first).
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from pathlib import Path

MIB = 1024 * 1024
V1 = Path("/sys/fs/cgroup/memory")
V2 = Path("/sys/fs/cgroup")


def available() -> str | None:
    """None when a memory cgroup can be made here, else why not."""
    if os.geteuid() != 0:
        return "memory cgroups need root"
    if V1.is_dir() and os.access(V1, os.W_OK):
        return None
    if (V2 / "cgroup.controllers").exists() and "memory" in \
            (V2 / "cgroup.subtree_control").read_text() and os.access(V2, os.W_OK):
        return None
    return "no writable memory cgroup (v1 /sys/fs/cgroup/memory or v2 with memory enabled)"


class MemoryCgroup:
    """A memory cgroup with a hard limit; processes join it before they exec."""

    def __init__(self, name: str, limit: int):
        self.v1 = V1.is_dir()
        self.path = (V1 if self.v1 else V2) / f"{name}-{os.getpid()}"
        self.limit = limit

    def __enter__(self) -> MemoryCgroup:
        self.path.mkdir()
        if self.v1:
            (self.path / "memory.limit_in_bytes").write_text(str(self.limit))
            with contextlib.suppress(OSError):  # no swap accounting: the limit is RAM alone
                (self.path / "memory.memsw.limit_in_bytes").write_text(str(self.limit))
        else:
            (self.path / "memory.max").write_text(str(self.limit))
            (self.path / "memory.swap.max").write_text("0")
        return self

    def __exit__(self, *exc_info: object) -> None:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                self.path.rmdir()
                return
            except OSError:
                time.sleep(0.1)  # its last processes are still exiting

    def join(self) -> None:
        """Put the calling process in the group (a preexec_fn: children follow it)."""
        (self.path / "cgroup.procs").write_text(str(os.getpid()))

    def oom_kills(self) -> int:
        """Processes of the group the kernel's OOM killer has killed."""
        text = (self.path / ("memory.oom_control" if self.v1 else "memory.events")).read_text()
        fields = dict(line.split() for line in text.splitlines() if line.strip())
        return int(fields.get("oom_kill", 0))

    def usage(self) -> int:
        """Bytes the group holds now."""
        return int((self.path / ("memory.usage_in_bytes" if self.v1 else "memory.current"))
                   .read_text())

    def peak(self) -> int:
        """The most bytes the group has held."""
        return int((self.path / ("memory.max_usage_in_bytes" if self.v1 else "memory.peak"))
                   .read_text())


class UsageWatch:
    """The group's largest usage while the watch is open, sampled every 50 ms."""

    def __init__(self, group: MemoryCgroup):
        self.group, self.peak = group, group.usage()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cgroup-watch", daemon=True)

    def __enter__(self) -> UsageWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            self.peak = max(self.peak, self.group.usage())
