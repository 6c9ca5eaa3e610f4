"""A warm validator: one process with the libraries imported that forks a child per validation.

Starting `python -m serving.swap.validator` costs seconds (it imports scikit-learn); serving's
master starts this process once (`start`, before any worker exists), exec'd with an environment free
of secrets, and it imports the libraries itself. A worker connects to
`VALIDATION_DIR/validator.sock`, sends one JSON line, and reads back the child's pid and then its
exit status; the child is as isolated as the standalone validator (its own address-space limit
and confinement, killed with its parent, an alarm as a backstop), so its death is only a status
line. Each child leads a process group of its own, killed whole when the child ends; this
process is a subreaper that kills any other process re-parented to it, and may not bind or
listen (serving.swap.containment), nor may anything it forks. Where no warm validator answers,
serving starts the standalone one (serving.swap.runners.run_standalone).

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
import subprocess
import sys
from pathlib import Path

from model_contract import logs

from . import cgroups, containment

SOCKET_NAME = "validator.sock"
PROCESS_NAME = "validator"  # its name in ps/psutil (a child of serving's master, not a worker)
SOCKET_PATH_MAX = 100  # bytes; sun_path holds 108
REQUEST_MAX = 64 * 1024
EXIT_CRASHED = 70
TICK = 0.1  # seconds between looks for ended children and orphans
PACKAGE_PARENT = str(Path(__file__).resolve().parents[2])
_STARTED: list[subprocess.Popen] = []


def socket_path(folder: Path) -> Path:
    """Where the warm validator of a VALIDATION_DIR listens."""
    return folder / SOCKET_NAME


def start(folder: Path) -> int | None:
    """Start the warm validator on a listener made here; its pid (None: not started).

    It is exec'd (not forked) with the environment minus the secrets: nothing of this process's
    memory, where the secrets are, reaches a process that unpickles models.
    """
    path = socket_path(folder)
    if len(os.fsencode(path)) > SOCKET_PATH_MAX:
        return None
    folder.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
        listener.bind(str(path))
        os.chmod(path, 0o600)
        listener.listen(16)  # asks wait here while the new process imports the libraries
        env = containment.clean_environ(os.environ)  # the child's environment, built, not read
        env["PYTHONPATH"] = os.pathsep.join(filter(None, (PACKAGE_PARENT, env.get("PYTHONPATH"))))
        command = [sys.executable, "-m", "serving.swap.zygote", str(listener.fileno()),
                   str(os.getpid())]
        try:
            process = subprocess.Popen(command, stdin=subprocess.DEVNULL, env=env,
                                       pass_fds=(listener.fileno(),))
        except OSError:
            return None
    _STARTED.append(process)  # kept: a collected Popen would be reaped by subprocess, not us
    return process.pid


def main(argv: list[str]) -> int:
    """Entry point of the warm validator: serve the listener it was given until its parent dies."""
    from . import validator

    validator.name_process(PROCESS_NAME)
    listener = socket.socket(fileno=int(argv[1]))
    validator.die_with_parent(int(argv[2]))
    logs.setup("warning")
    validator.yield_cpu_to_workers(PROCESS_NAME)  # each child it forks inherits it
    containment.become_subreaper()  # a double-forked grandchild comes back here to be killed
    if not containment.deny_listening():
        containment.warn_unconfined()
    for name in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGCHLD):
        signal.signal(name, signal.SIG_DFL)
    from serving.model import loader  # noqa: F401  (warm: every child starts with it imported)

    try:
        _serve(listener)
    finally:
        os._exit(EXIT_CRASHED)


def _serve(listener: socket.socket) -> None:
    """Accept requests, fork a child for each, report each child's exit status to its asker;
    kill what a child leaves behind."""
    waiting: dict[int, socket.socket] = {}
    while True:
        ready, _, _ = select.select([listener], [], [], TICK)
        if ready:
            with contextlib.suppress(OSError):
                _accept(listener, waiting)
        _reap(waiting)
        containment.kill_orphans(waiting)


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
        os.setpgid(0, 0)  # its descendants die with its group at the verdict
        listener.close()
        for other in waiting.values():
            other.close()
        connection.close()
        _validate(request)
    with contextlib.suppress(OSError):  # the child may not have run yet: set it from here too
        os.setpgid(pid, pid)
    waiting[pid] = connection
    connection.sendall(f"{pid}\n".encode())


def _validate(request: dict) -> None:
    """The child: limits, then the validator's own run; never returns."""
    from . import validator

    code = EXIT_CRASHED
    try:
        validator.die_with_parent(os.getppid())
        signal.alarm(int(request["timeout"]) + 5)  # a backstop: the worker kills it first
        code = validator.validate(Path(request["root"]), request["snapshot"],
                                  float(request["min_accuracy"]), int(request["memory_limit"]),
                                  Path(request["result"]))
    finally:
        os._exit(code)


def _reap(waiting: dict[int, socket.socket]) -> None:
    """Reap every ended child; a validation's end is its verdict: its whole group is killed."""
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        connection = waiting.pop(pid, None)
        containment.kill_group(pid)
        cgroups.remove(pid)
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


if __name__ == "__main__":
    sys.exit(main(sys.argv))
