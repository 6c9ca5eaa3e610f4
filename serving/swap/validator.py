"""The validator process: load and check one snapshot where its crash cannot hurt a worker.

    python -m serving.swap.validator MODEL_ROOT SNAPSHOT_ID RESULT_FILE MIN_ACCURACY MEMORY_LIMIT

It asks the kernel to kill it if the worker that started it dies, forbids itself to listen, and
runs the validation in a child leading a process group of its own (serving.swap.containment): the
child limits its address space (RLIMIT_AS) to MEMORY_LIMIT bytes, confines itself (no signal to
another process, no new process, no file opened for writing), runs serving.model.loader.load, and
writes its verdict as JSON to RESULT_FILE. When the child ends, its group and every orphan
re-parented here are killed, and its exit status becomes this process's. Whatever the model does
(SIGKILL, SIGSEGV, os._exit, a hang, a double fork) is read from outside by
serving.swap.jobs.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import resource
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

from model_contract import logs

from . import cgroups, containment, priority

PR_SET_PDEATHSIG = 1
PR_SET_NAME = 15
EXIT_VERDICT = 0  # a verdict (accepted or rejected) was written
EXIT_USAGE = 64


def name_process(name: str) -> None:
    """The name ps and psutil show for this process (Linux only; at most 15 bytes)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).prctl(PR_SET_NAME, name.encode())


def die_with_parent(parent: int) -> None:
    """SIGKILL this process when the thread that started it ends (Linux only)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        return  # not Linux: the worker's deadline still bounds the run
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(EXIT_USAGE)


def yield_cpu_to_workers(who: str) -> str:
    """This process, and the validations it forks (they inherit it), under SCHED_BATCH at nice
    10: what they run under.

    Not SCHED_IDLE, as the shadow challenger: a validation must end within VALIDATION_TIMEOUT,
    and a rejection sticks until the registry's choice changes. Measured on 2 cores with both
    workers saturated by wrk, validations of the bench's pipeline back to back: at nice 0 the
    champion's p99 was 4.5x and each validation took 0.26 s; SCHED_BATCH at nice 10, 1.7x and
    0.52 s; at nice 19, 0.9x and 2.9 s; SCHED_IDLE, 1.1x, but it made no progress while the
    workers were busy. Against a busy worker on each CPU, nice 10 keeps about a tenth of a CPU
    (weight 110 to 1024), so only a validation needing over a tenth of VALIDATION_TIMEOUT of CPU
    can be timed out by load alone (nice 19: a seventieth; SCHED_IDLE: any).
    """
    return priority.yield_cpu(0, priority.Policy.BATCH, who)


def process_alive(pid: int) -> bool:
    """Whether a process with this id exists (possibly another user's)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def limit_memory(limit: int) -> None:
    """Cap the address space, so a model that allocates too much gets MemoryError, not OOM."""
    if limit > 0:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def write(result_file: Path, verdict: dict[str, object]) -> None:
    """Write the verdict where the worker reads it, whole or not at all."""
    temp = result_file.with_name(result_file.name + ".tmp")
    temp.write_text(json.dumps(verdict), encoding="utf-8")
    os.replace(temp, result_file)


def validate(root: Path, snapshot_id: str, min_accuracy: float, limit: int,
             result_file: Path) -> int:
    """The validation child's work: limits and the filter, the load, the verdict written."""
    from serving.model import loader  # noqa: F401  (the libraries set up before the filter: joblib's lock)

    cgroups.join(os.getpid())  # where a pids cgroup can be made: its threads bounded too
    # Opened first: the filter refuses it after. Written in place (no rename, refused too): the
    # worker reads it only once this process has ended, and only if it ended with EXIT_VERDICT.
    with open(result_file, "w", encoding="utf-8") as out:
        limit_memory(limit)
        if not containment.confine_validation():
            containment.warn_unconfined()
        try:
            verdict = run(root, snapshot_id, min_accuracy, limit)
        except MemoryError:
            verdict = {"state": "rejected", "reason": out_of_memory(limit)}
        out.write(json.dumps(verdict))
    return EXIT_VERDICT


def out_of_memory(limit: int) -> str:
    """The reason given when the model needs more than the validator may have."""
    return f"validator ran out of memory (VALIDATION_MEMORY_LIMIT={limit // (1024 * 1024)} MiB)"


def run(root: Path, snapshot_id: str, min_accuracy: float, limit: int) -> dict[str, object]:
    """Load and check the snapshot; the verdict as a JSON-ready mapping."""
    from serving.errors import ModelRejected, SnapshotNotFound
    from serving.model.loader import load

    try:
        model = load(root, snapshot_id, min_accuracy)
    except SnapshotNotFound as exc:
        return {"state": "rejected", "reason": str(exc)}
    except ModelRejected as exc:
        memory = isinstance(exc.__cause__, MemoryError)
        return {"state": "rejected", "reason": out_of_memory(limit) if memory else exc.reason}
    return {"state": "accepted", "version": model.version, "versions": model.versions,
            "layout": model.layout, "checks": model.checks}


def main(argv: list[str]) -> int:
    """Entry point of the validator process."""
    if len(argv) != 6:
        print("usage: python -m serving.swap.validator MODEL_ROOT SNAPSHOT_ID RESULT_FILE "
              "MIN_ACCURACY MEMORY_LIMIT", file=sys.stderr)
        return EXIT_USAGE
    root, snapshot_id, result_file = Path(argv[1]), argv[2], Path(argv[3])
    # Not a setting: the pid runners.run_standalone hands its child, to tell whether that parent
    # died before PDEATHSIG was armed (getppid then names another process).
    die_with_parent(int(os.environ.get("SERVING_VALIDATOR_PARENT", os.getppid())))
    logs.setup("warning")
    yield_cpu_to_workers("validator")
    if not containment.deny_listening():
        containment.warn_unconfined()
    code = supervise(lambda: validate(root, snapshot_id, float(argv[4]), int(argv[5]),
                                      result_file))
    if code < 0:  # died of a signal: so does this process, for the worker to read it
        with contextlib.suppress(OSError, ValueError):  # SIGKILL has no handler to reset
            signal.signal(-code, signal.SIG_DFL)
        os.kill(os.getpid(), -code)
    return code


def supervise(validate: Callable[[], int], tick: float = 0.1) -> int:
    """Run `validate` in a child leading its own group; when it ends, kill that group and every
    orphan re-parented here. The child's exit status (negative: its signal)."""
    containment.become_subreaper()
    supervisor = os.getpid()
    child = os.fork()
    if child == 0:
        code = EXIT_USAGE
        try:
            os.setpgid(0, 0)
            die_with_parent(supervisor)
            code = validate()
        finally:
            os._exit(code)
    with contextlib.suppress(OSError):
        os.setpgid(child, child)

    def stopped(*_: object) -> None:  # the worker's deadline passed: end everything, then self
        _end(child, 0)
        os._exit(EXIT_USAGE)

    signal.signal(signal.SIGTERM, stopped)
    status = None
    while status is None:
        status = _reap(child)
        containment.kill_orphans((child,))
        time.sleep(tick)
    _end(child, 2.0)
    return os.waitstatus_to_exitcode(status)


def _reap(child: int) -> int | None:
    """Reap every ended child; the validation child's wait status once it has ended."""
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return None
        if pid == 0:
            return None
        if pid == child:
            return status


def _end(child: int, seconds: float) -> None:
    """Kill the child's group and the orphans until none is left (for `seconds` at most)."""
    containment.kill_group(child)
    deadline = time.monotonic() + seconds
    while containment.kill_orphans(()) and time.monotonic() < deadline:
        _reap(child)
        time.sleep(0.02)
    _reap(child)
    cgroups.remove(child)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
