"""How much CPU a process that computes beside the champion's workers may take from them.

Nice 19 is not enough on a machine the workers keep busy: the scheduler still gives a nice-19
process CPU slices of its own (its weight is 15 to a worker's 1024), and a worker woken by a
request may wait for one to end (bench part 12: a challenger in a long C call in its own process
at nice 19 made the champion's p99 1.41x). SCHED_IDLE (Linux, allowed to any user) runs a process
on CPU the others leave (weight 3, and a waking worker takes the CPU from it at once). Where it is
refused (another OS, a sandbox), nice 19, said once per process. Validations get SCHED_BATCH at
nice 10 instead: they must end within VALIDATION_TIMEOUT (serving.swap.validator says why).
"""

from __future__ import annotations

import contextlib
import enum
import os

from model_contract import logs

log = logs.get(__name__)
_REFUSED: set[str] = set()  # the policies whose refusal this process has logged


class Policy(enum.Enum):
    """How a process yields the CPU to the workers."""

    IDLE = "SCHED_IDLE"  # only CPU nobody else wants (nice 19 where refused)
    BATCH = "SCHED_BATCH"  # at nice 10: a small share, kept, and no wake-up preemption


NICE = {Policy.IDLE: 19, Policy.BATCH: 10}  # for SCHED_IDLE, only where it is refused


def yield_cpu(pid: int, policy: Policy, who: str) -> str:
    """Put process `pid` (0: this one) under `policy` at its nice value; where the OS refuses
    the policy, the nice value alone, said once per process. What it runs under."""
    with contextlib.suppress(OSError):
        os.setpriority(os.PRIO_PROCESS, pid, NICE[policy])
    try:
        os.sched_setscheduler(pid, getattr(os, policy.value), os.sched_param(0))
        return policy.value
    except (AttributeError, OSError) as exc:  # not Linux, or a sandbox said no
        if policy.value not in _REFUSED:
            _REFUSED.add(policy.value)
            log.warning("cpu_policy_refused", process=who, policy=policy.value,
                        fallback=f"nice {NICE[policy]}",
                        error=getattr(exc, "strerror", None) or type(exc).__name__)
    return f"nice {NICE[policy]}"


def run_queue_wait(pid: int) -> float:
    """Seconds process `pid` has waited for a CPU, ready to run, in waits that have ended (the
    kernel adds a wait once the CPU is given); its main thread's (serving runs BLAS on one
    thread: OMP_NUM_THREADS=1). 0.0 where schedstat cannot be read."""
    try:
        with open(f"/proc/{pid}/schedstat", "rb") as stat:
            return int(stat.read().split()[1]) / 1e9  # on CPU, waiting, timeslices (ns)
    except (OSError, ValueError, IndexError):
        return 0.0


def runnable(pid: int) -> bool:
    """Whether process `pid` is running or waiting for a CPU now (not sleeping, not gone)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            line = stat.read()
    except OSError:
        return False
    return line[line.rfind(b")") + 2:][:1] == b"R"  # after the name, which may hold anything
