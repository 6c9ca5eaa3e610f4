"""What keeps a validated model inside its validation: no listener, no survivors, no secrets.

Linux only; each step is a no-op elsewhere (and says so by its return value).

- `deny_listening`: a seccomp filter (serving.swap.seccomp), inherited by every descendant and never
  removable, that makes bind(2), listen(2) and io_uring_setup(2) fail with EPERM, and ptrace(2),
  process_vm_readv/writev(2) and pidfd_getfd(2) too. A model being validated has no business
  serving anything, nor reaching into a worker; without it a same-user process may join the
  public port, whose listeners granian opens with SO_REUSEPORT (one per worker), or take a
  worker's listening socket.
- `confine_validation`: a second filter in each validation's own child, once the validator has
  set up what it needs (the validator itself must still kill validation groups): no signal to
  any process but itself (the workers run as the same user: kill(-1, SIGSTOP) would stop them
  all), no new process (RLIMIT_AS then bounds the whole validation's memory), no file opened for
  writing (the pod's disk; /proc/<worker>/mem), renamed, removed or re-moded (VALIDATION_DIR's
  verdicts and socket), no memfd or SysV shared memory; and rlimits on descriptors, file size
  and core dumps.
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
import errno
import os
import platform
import resource
import signal
from collections.abc import Iterable, Mapping

from . import seccomp
from .seccomp import Rule, When

# A model being validated has no business with the process's secrets.
HIDDEN_VARIABLES = ("RELOAD_TOKEN", "RELOAD_TOKEN_FILE", "WEBHOOK_SECRET", "COMET_API_KEY",
                    "COMET_API_KEY_FILE")

PR_SET_CHILD_SUBREAPER = 36
CLONE_THREAD = 0x10000
OPEN_FOR_WRITING = 0o1 | 0o2 | 0o100 | 0o1000  # O_WRONLY, O_RDWR, O_CREAT, O_TRUNC
F_SETOWN, F_SETSIG, F_SETOWN_EX, F_SETPIPE_SZ = 8, 10, 15, 1031
FIOSETOWN, SIOCSPGRP = 0x8901, 0x8902
NOFILE_LIMIT = 128  # descriptors a validation may hold (each socket or pipe buffers memory)
FSIZE_LIMIT = 1024 * 1024  # bytes a validation may write to a file it holds (its verdict)


def _call(x86_64: int | None, aarch64: int | None, when: When = When.ALWAYS, arg: int = 0,
          values: tuple[int, ...] = (), error: int = errno.EPERM) -> Rule:
    return Rule({"x86_64": x86_64, "aarch64": aarch64}, when, arg, values, error)


# bind, listen, io_uring_setup (io_uring can bind and listen too), and what reaches into another
# process of the same user: ptrace, process_vm_readv/writev, pidfd_getfd (a worker's socket).
LISTENING = [_call(49, 200), _call(50, 201), _call(425, 425), _call(101, 117), _call(310, 270),
             _call(311, 271), _call(438, 438)]


# What changes the names or modes of files serving's user may write (VALIDATION_DIR: verdicts,
# the canary guard's records, the warm validator's socket): rename, mkdir, rmdir, link, unlink,
# symlink, chmod, chown, lchown, mknod, mkdirat, mknodat, fchownat, unlinkat, renameat, linkat,
# symlinkat, fchmodat, renameat2, fchmodat2.
NAMING = [_call(82, None), _call(83, None), _call(84, None), _call(86, None), _call(87, None),
          _call(88, None), _call(90, None), _call(92, None), _call(94, None), _call(133, None),
          _call(258, 34), _call(259, 33), _call(260, 54), _call(263, 35), _call(264, 38),
          _call(265, 37), _call(266, 36), _call(268, 53), _call(316, 276), _call(452, 452)]


def validation_rules(pid: int) -> list[Rule]:
    """What a validation child (process `pid`) may not do beyond LISTENING: signal any process
    but itself, start a process, open a file for writing, make memory outside its address
    space (memfd, SysV shared memory), grow a file, or rename, remove or re-mode one."""
    own = (When.UNLESS_ONE_OF, 0, (pid,))
    return [
        _call(62, 129, *own), _call(200, 130, *own), _call(234, 131, *own),  # kill, tkill, tgkill
        _call(129, 138, *own), _call(297, 240, *own),  # rt_sigqueueinfo, rt_tgsigqueueinfo
        _call(424, 424),  # pidfd_send_signal
        # SIGIO/SIGURG sent by the kernel to the owner set here: a signal to any process
        _call(72, 25, When.IF_ONE_OF, 1, (F_SETOWN, F_SETSIG, F_SETOWN_EX, F_SETPIPE_SZ)),
        _call(16, 29, When.IF_ONE_OF, 1, (FIOSETOWN, SIOCSPGRP)),  # ioctl
        _call(57, None), _call(58, None),  # fork, vfork
        _call(56, 220, When.UNLESS_BITS, 0, (CLONE_THREAD,)),  # clone: threads only
        _call(435, 435, error=errno.ENOSYS),  # clone3 (args unreadable): libc falls back to clone
        _call(2, None, When.IF_ANY_BIT, 1, (OPEN_FOR_WRITING,)),  # open
        _call(257, 56, When.IF_ANY_BIT, 2, (OPEN_FOR_WRITING,)),  # openat
        _call(437, 437, error=errno.ENOSYS),  # openat2: libc falls back to openat
        _call(85, None),  # creat
        _call(319, 279), _call(29, 194),  # memfd_create, shmget
        _call(285, 47), _call(76, 45),  # fallocate, truncate
        *NAMING,
    ]


def deny_listening() -> bool:
    """Refuse listening (and reaching into other processes) to this process and its descendants
    for ever; False if not possible."""
    return seccomp.install(LISTENING)


def confine_validation() -> bool:
    """Refuse this process, for ever, what `validation_rules` lists, and bound its descriptors,
    file sizes and core dumps; False if the filter could not be installed."""
    for limit, value in ((resource.RLIMIT_NOFILE, NOFILE_LIMIT),
                         (resource.RLIMIT_FSIZE, FSIZE_LIMIT), (resource.RLIMIT_CORE, 0)):
        _, hard = resource.getrlimit(limit)
        value = value if hard == resource.RLIM_INFINITY else min(value, hard)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(limit, (value, value))
    return seccomp.install(validation_rules(os.getpid()))


def warn_unconfined() -> None:
    """Say, as one JSON line on stderr, that this validator could not forbid listening."""
    from model_contract import logs

    logs.setup("warning")
    logs.get(__name__).warning("validator_unconfined", reason="seccomp filter refused",
                               machine=platform.machine())


def become_subreaper() -> bool:
    """Orphaned descendants of this process are re-parented to it (not to init)."""
    return seccomp.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


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
