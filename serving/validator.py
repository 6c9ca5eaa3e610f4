"""The validator process: load and check one snapshot where its crash cannot hurt a worker.

    python -m serving.validator MODEL_ROOT SNAPSHOT_ID RESULT_FILE MIN_ACCURACY MEMORY_LIMIT

It limits its own address space (RLIMIT_AS) to MEMORY_LIMIT bytes, asks the kernel to kill it if
the worker that started it dies, runs serving.loader.load, and writes its verdict as JSON to
RESULT_FILE. Whatever the model does to this process (SIGKILL, SIGSEGV, os._exit, a hang) is
read from outside by serving.validations.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import resource
import signal
import sys
from pathlib import Path

# A model being validated has no business with the process's secrets.
HIDDEN_VARIABLES = ("RELOAD_TOKEN", "RELOAD_TOKEN_FILE", "WEBHOOK_SECRET", "COMET_API_KEY",
                    "COMET_API_KEY_FILE")

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


def out_of_memory(limit: int) -> str:
    """The reason given when the model needs more than the validator may have."""
    return f"validator ran out of memory (VALIDATION_MEMORY_LIMIT={limit // (1024 * 1024)} MiB)"


def run(root: Path, snapshot_id: str, min_accuracy: float, limit: int) -> dict[str, object]:
    """Load and check the snapshot; the verdict as a JSON-ready mapping."""
    from .errors import ModelRejected, SnapshotNotFound
    from .loader import load

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
        print("usage: python -m serving.validator MODEL_ROOT SNAPSHOT_ID RESULT_FILE "
              "MIN_ACCURACY MEMORY_LIMIT", file=sys.stderr)
        return EXIT_USAGE
    root, snapshot_id, result_file = Path(argv[1]), argv[2], Path(argv[3])
    die_with_parent(int(os.environ.get("SERVING_VALIDATOR_PARENT", os.getppid())))
    limit = int(argv[5])
    limit_memory(limit)
    try:
        verdict = run(root, snapshot_id, float(argv[4]), limit)
    except MemoryError:
        verdict = {"state": "rejected", "reason": out_of_memory(limit)}
    write(result_file, verdict)
    return EXIT_VERDICT


if __name__ == "__main__":
    sys.exit(main(sys.argv))
