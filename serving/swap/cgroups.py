"""A pids cgroup per validation where serving may make one: its threads bounded.

The seccomp filter (serving.swap.containment) refuses a validation any new process, but not threads;
without this, only the address-space limit over their stacks bounds them (some 20,000 at
768 MiB, each with a pid and some 30 KiB of kernel memory). The validation's child joins a group
made under serving's own in the pids hierarchy (cgroup v1), or in the unified one (v2) where our
group lets its children use the controller, named after its pid; the process that reaps it
removes the group. A container usually gets /sys/fs/cgroup read-only: then nothing is made.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

ROOT = Path("/sys/fs/cgroup")
PREFIX = "serving-validation-"
# Threads a validation may run: a load uses a few, BLAS and OpenMP one a core (libgomp aborts
# when it cannot start one, so the cores are counted, not guessed).
TASKS_LIMIT = 64 + (os.cpu_count() or 1)


def own_group(proc_cgroup: str = "/proc/self/cgroup", root: Path = ROOT) -> Path | None:
    """The directory of serving's own pids group (None: no pids controller we could use)."""
    try:
        lines = Path(proc_cgroup).read_text().splitlines()
    except OSError:
        return None
    unified = None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if "pids" in controllers.split(","):  # v1: a hierarchy of its own
            return root / "pids" / path.lstrip("/")
        if controllers == "":
            unified = root / path.lstrip("/")
    if unified is None or not (root / "cgroup.controllers").exists():
        return None
    try:
        enabled = (unified / "cgroup.subtree_control").read_text().split()
    except OSError:
        return None
    return unified if "pids" in enabled else None


def join(pid: int) -> bool:
    """Make validation `pid`'s group, at most TASKS_LIMIT tasks, and move it in; whether done."""
    own = own_group()
    if own is None:
        return False
    group = own / f"{PREFIX}{pid}"
    try:
        group.mkdir(exist_ok=True)
        (group / "pids.max").write_text(str(TASKS_LIMIT))
        (group / "cgroup.procs").write_text(str(pid))
    except OSError:
        with contextlib.suppress(OSError):
            group.rmdir()
        return False
    return True


def remove(pid: int) -> None:
    """Remove validation `pid`'s group (it has been reaped: the group is empty)."""
    own = own_group()
    if own is not None:
        with contextlib.suppress(OSError):
            (own / f"{PREFIX}{pid}").rmdir()
