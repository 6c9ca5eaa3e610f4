"""What keeps a validated model inside its validation: no listener, no survivors, no secrets.

Linux only; each step is a no-op elsewhere (and says so by its return value).

- `deny_listening`: a seccomp filter, inherited by every descendant and never removable, that
  makes bind(2), listen(2) and io_uring_setup(2) fail with EPERM, and ptrace(2),
  process_vm_readv/writev(2) and pidfd_getfd(2) too. A model being validated has no business
  serving anything, nor reaching into a worker; without it a same-user process may join the
  public port, whose listeners granian opens with SO_REUSEPORT (one per worker), or take a
  worker's listening socket.
- `become_subreaper`, `kill_group`, `kill_orphans`: a validation runs in a process group of its
  own under a subreaper, so a double-forked grandchild is re-parented to the subreaper, found
  and killed, whatever group or session it moved to.
- `clean_environ`, `scrub_environ`: secrets never reach a validator's environment (it is exec'd
  with a clean one), and the master's own initial environment block (/proc/<pid>/environ, read
  by any process of the same user) is overwritten once the values are copied into os.environ.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import platform
import signal
from collections.abc import Iterable, Mapping

# A model being validated has no business with the process's secrets.
HIDDEN_VARIABLES = ("RELOAD_TOKEN", "RELOAD_TOKEN_FILE", "WEBHOOK_SECRET", "COMET_API_KEY",
                    "COMET_API_KEY_FILE")

PR_SET_SECCOMP = 22
PR_SET_CHILD_SUBREAPER = 36
PR_SET_NO_NEW_PRIVS = 38
SECCOMP_MODE_FILTER = 2
SECCOMP_RET_ALLOW = 0x7FFF0000
SECCOMP_RET_EPERM = 0x00050000 | 1
X32_SYSCALL_BIT = 0x40000000
# Per machine: (audit arch, refused calls, whether the x32 ABI exists). The calls: bind, listen,
# io_uring_setup (io_uring can bind and listen too), and what reaches into another process of the
# same user: ptrace, process_vm_readv/writev, pidfd_getfd (a worker's listening socket).
ARCHES = {"x86_64": (0xC000003E, (49, 50, 425, 101, 310, 311, 438), True),
          "aarch64": (0xC00000B7, (200, 201, 425, 117, 270, 271, 438), False)}
LD_W_ABS, JEQ_K, JGE_K, RET_K = 0x20, 0x15, 0x35, 0x06


class _Filter(ctypes.Structure):
    _fields_ = [("code", ctypes.c_ushort), ("jt", ctypes.c_ubyte), ("jf", ctypes.c_ubyte),
                ("k", ctypes.c_uint32)]


class _Program(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(_Filter))]


def _prctl(*args: int | ctypes.c_void_p) -> bool:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
    except OSError:
        return False
    return libc.prctl(*(a if isinstance(a, ctypes.c_void_p) else ctypes.c_ulong(a)
                        for a in args)) == 0


def listening_filter(machine: str) -> list[tuple[int, int, int, int]] | None:
    """The BPF program (code, jt, jf, k) refusing the listening calls; None on other machines."""
    if machine not in ARCHES:
        return None
    arch, numbers, x32 = ARCHES[machine]
    length = 3 + int(x32) + len(numbers) + 2
    deny = length - 1

    def to_deny(index: int) -> int:
        return deny - index - 1

    program = [(LD_W_ABS, 0, 0, 4), (JEQ_K, 0, to_deny(1), arch), (LD_W_ABS, 0, 0, 0)]
    if x32:  # the x32 ABI numbers the same calls differently: refuse all of it
        program.append((JGE_K, to_deny(len(program)), 0, X32_SYSCALL_BIT))
    for number in numbers:
        program.append((JEQ_K, to_deny(len(program)), 0, number))
    return [*program, (RET_K, 0, 0, SECCOMP_RET_ALLOW), (RET_K, 0, 0, SECCOMP_RET_EPERM)]


def deny_listening() -> bool:
    """Refuse listening (and reaching into other processes) to this process and its descendants
    for ever; False if not possible."""
    program = listening_filter(platform.machine())
    if program is None or not _prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0):
        return False
    filters = (_Filter * len(program))(*(_Filter(*instruction) for instruction in program))
    fprog = _Program(len(program), filters)
    return _prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.c_void_p(ctypes.addressof(fprog)))


def warn_unconfined() -> None:
    """Say, as one JSON line on stderr, that this validator could not forbid listening."""
    from model_contract import logs

    logs.setup("warning")
    logs.get(__name__).warning("validator_unconfined", reason="seccomp filter refused",
                               machine=platform.machine())


def become_subreaper() -> bool:
    """Orphaned descendants of this process are re-parented to it (not to init)."""
    return _prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def children() -> set[int]:
    """The pids of this process's children (every thread's), from /proc."""
    found: set[int] = set()
    with contextlib.suppress(OSError):
        for task in os.listdir("/proc/self/task"):
            with contextlib.suppress(OSError), open(f"/proc/self/task/{task}/children") as f:
                found.update(int(pid) for pid in f.read().split())
    return found


def kill_group(pgid: int) -> None:
    """SIGKILL every process of a group (gone already: nothing to do)."""
    with contextlib.suppress(OSError):
        os.killpg(pgid, signal.SIGKILL)


def kill_orphans(keep: Iterable[int]) -> int:
    """SIGKILL every child of this process not in `keep` (with its group); how many."""
    kept = set(keep)
    strays = children() - kept
    for pid in strays:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(OSError):
            if os.getpgid(pid) not in kept and os.getpgid(pid) != os.getpgrp():
                os.killpg(os.getpgid(pid), signal.SIGKILL)
    return len(strays)


def clean_environ(environ: Mapping[str, str]) -> dict[str, str]:
    """The environment without the hidden variables."""
    return {k: v for k, v in environ.items() if k not in HIDDEN_VARIABLES}


def scrub_environ(names: Iterable[str] = HIDDEN_VARIABLES) -> int:
    """Zero the entries `names` in this process's initial environment block; how many.

    os.environ (a copy) keeps them for the workers forked from here; /proc/<pid>/environ of
    this process and of those forks then shows none of them.
    """
    try:
        with open("/proc/self/stat", "rb") as f:
            fields = f.read().rpartition(b")")[2].split()
        start, end = int(fields[47]), int(fields[48])  # env_start, env_end (proc(5))
        with open("/proc/self/environ", "rb") as f:
            block = f.read()
    except (OSError, IndexError, ValueError):
        return 0
    if not start or end - start < len(block):
        return 0
    wanted = {os.fsencode(name) + b"=" for name in names}
    offset, done = 0, 0
    for entry in block.split(b"\0"):
        if any(entry.startswith(prefix) for prefix in wanted):
            ctypes.memset(start + offset, 0, len(entry))
            done += 1
        offset += len(entry) + 1
    return done
