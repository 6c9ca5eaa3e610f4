"""How a validation runs: the warm validator's child, a fresh process, or (tests) in-process.

Each runner takes (config, snapshot id, result file, timeout) and returns the exit status of
the process that validated (negative: killed by that signal), or raises TimeoutError once it
was killed for outliving the deadline. The verdict itself is in the result file.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from serving.config import ServingConfig

from . import containment, zygote

PACKAGE_PARENT = str(Path(__file__).resolve().parents[2])
TERMINATE_GRACE = 3.0  # seconds a timed-out validator has to kill what it started


def run_in_process(config: ServingConfig, snapshot_id: str, result: Path, timeout: float) -> int:
    """Run the validator in a process of its own: forked by the warm validator if one listens,
    else started afresh. Its exit status (TimeoutError past the deadline)."""
    code = run_in_zygote(config, snapshot_id, result, timeout)
    return run_standalone(config, snapshot_id, result, timeout) if code is None else code


def run_in_zygote(config: ServingConfig, snapshot_id: str, result: Path,
                  timeout: float) -> int | None:
    """Ask the warm validator (serving.swap.zygote) for a child; None if none answers."""
    request = {"root": str(config.model_root), "snapshot": snapshot_id, "result": str(result),
               "min_accuracy": config.golden_min_accuracy, "timeout": timeout,
               "memory_limit": config.validation_memory_limit}
    deadline = time.monotonic() + timeout
    connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    with connection:
        try:
            connection.settimeout(5)
            connection.connect(str(zygote.socket_path(config.validation_dir)))
            connection.sendall(json.dumps(request).encode() + b"\n")
            lines = connection.makefile("rb")
            child = int(lines.readline())
        except (OSError, ValueError):
            return None  # no warm validator: the standalone one decides
        connection.settimeout(max(0.1, deadline - time.monotonic()))
        try:
            status = lines.readline()
        except TimeoutError:
            _kill(child)
            raise
        except OSError:
            status = b""
        if not status.strip():  # the warm validator died: its child with it (PDEATHSIG)
            _kill(child)
            return None
        return int(status)


def _kill(pid: int) -> None:
    with contextlib.suppress(OSError):
        os.kill(pid, signal.SIGKILL)


def run_standalone(config: ServingConfig, snapshot_id: str, result: Path,
                   timeout: float) -> int:
    """Start `python -m serving.swap.validator`; its exit status (TimeoutError past deadline)."""
    env = containment.clean_environ(os.environ)  # the child's environment, built, not read
    env["PYTHONPATH"] = os.pathsep.join(filter(None, (PACKAGE_PARENT, env.get("PYTHONPATH"))))
    env["SERVING_VALIDATOR_PARENT"] = str(os.getpid())
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env.setdefault(name, "1")  # a thread pool per core would eat the address-space limit
    command = [sys.executable, "-m", "serving.swap.validator", str(config.model_root), snapshot_id,
               str(result), repr(config.golden_min_accuracy), str(config.validation_memory_limit)]
    process = subprocess.Popen(command, stdin=subprocess.DEVNULL, env=env,
                               start_new_session=True)
    try:
        return process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.terminate()  # the validator kills its child's group and orphans, then exits
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(TERMINATE_GRACE)
        containment.kill_group(process.pid)
        process.wait()
        raise TimeoutError from None


def run_inline(config: ServingConfig, snapshot_id: str, result: Path, timeout: float) -> int:
    """Validate in this process (tests of other parts only: no isolation, no deadline)."""
    from .validator import run, write

    write(result, run(config.model_root, snapshot_id, config.golden_min_accuracy,
                      config.validation_memory_limit))
    return 0
