"""A warm validator: one process with the libraries imported that forks a child per validation.

Starting `python -m serving.validator` costs seconds (it imports scikit-learn); serving's master
has those modules imported already, so its config forks this process from the master before any
worker exists (`start`). A worker connects to `VALIDATION_DIR/validator.sock`, sends one JSON
line, and reads back the child's pid and then its exit status; the child is as isolated as the
standalone validator (its own address-space limit, killed with its parent, an alarm as a
backstop), so its death is only a status line. Where no warm validator answers, serving starts
the standalone one (serving.runners.run_standalone).

    worker -> {"root", "snapshot", "result", "min_accuracy", "memory_limit", "timeout"}\n
    worker <- "<child pid>\n" ... "<exit status: negative for a signal>\n"
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import socket
from pathlib import Path

SOCKET_NAME = "validator.sock"
PROCESS_NAME = "validator"  # its name in ps/psutil (a child of serving's master, not a worker)
SOCKET_PATH_MAX = 100  # bytes; sun_path holds 108
REQUEST_MAX = 64 * 1024
EXIT_CRASHED = 70


def socket_path(folder: Path) -> Path:
    """Where the warm validator of a VALIDATION_DIR listens."""
    return folder / SOCKET_NAME


def start(folder: Path) -> int | None:
    """Fork the warm validator from this single-threaded process; its pid (None: not started)."""
    path = socket_path(folder)
    if len(os.fsencode(path)) > SOCKET_PATH_MAX:
        return None
    folder.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    os.chmod(path, 0o600)
    listener.listen(16)
    parent = os.getpid()
    pid = os.fork()
    if pid:
        listener.close()
        return pid
    code = EXIT_CRASHED
    try:
        _serve(listener, parent)
    finally:
        os._exit(code)


def _serve(listener: socket.socket, parent: int) -> None:
    """Accept requests, fork a child for each, report each child's exit status to its asker."""
    from . import validator

    validator.die_with_parent(parent)
    validator.name_process(PROCESS_NAME)
    for name in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGCHLD):
        signal.signal(name, signal.SIG_DFL)
    from . import loader  # noqa: F401  (warm: every child starts with it imported)

    waiting: dict[int, socket.socket] = {}
    while True:
        ready, _, _ = select.select([listener], [], [], 0.1)
        if ready:
            with contextlib.suppress(OSError):
                _accept(listener, waiting)
        _reap(waiting)


def _accept(listener: socket.socket, waiting: dict[int, socket.socket]) -> None:
    connection, _ = listener.accept()
    connection.settimeout(5)
    try:
        request = json.loads(_read_line(connection))
    except (OSError, ValueError):
        connection.close()
        return
    pid = os.fork()
    if pid == 0:
        listener.close()
        for other in waiting.values():
            other.close()
        connection.close()
        _validate(request)
    connection.sendall(f"{pid}\n".encode())
    waiting[pid] = connection


def _validate(request: dict) -> None:
    """The child: limits, then the validator's own run; never returns."""
    from . import validator

    code = EXIT_CRASHED
    try:
        for name in validator.HIDDEN_VARIABLES:
            os.environ.pop(name, None)
        validator.die_with_parent(os.getppid())
        signal.alarm(int(request["timeout"]) + 5)  # a backstop: the worker kills it first
        limit = int(request["memory_limit"])
        validator.limit_memory(limit)
        try:
            verdict = validator.run(Path(request["root"]), request["snapshot"],
                                    float(request["min_accuracy"]), limit)
        except MemoryError:
            verdict = {"state": "rejected", "reason": validator.out_of_memory(limit)}
        validator.write(Path(request["result"]), verdict)
        code = validator.EXIT_VERDICT
    finally:
        os._exit(code)


def _reap(waiting: dict[int, socket.socket]) -> None:
    while waiting:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        connection = waiting.pop(pid, None)
        if connection is not None:
            with contextlib.suppress(OSError):
                connection.sendall(f"{os.waitstatus_to_exitcode(status)}\n".encode())
            connection.close()


def _read_line(connection: socket.socket) -> bytes:
    data = b""
    while not data.endswith(b"\n"):
        part = connection.recv(4096)
        if not part or len(data) > REQUEST_MAX:
            raise ValueError("incomplete request")
        data += part
    return data
