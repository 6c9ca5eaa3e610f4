"""The challenger's shadow calls in a process of its own, so they cannot take the champion's GIL.

In the worker's interpreter a challenger that computes (a Python loop, a long C call holding the
GIL) delays every request of that worker, whatever the scoring thread's priority: the GIL is not
scheduled by the OS. So the scoring thread forks a child holding the challenger (it shares the
worker's memory, copy on write: no second load) and hands it each batch's matrix over a socket
pair. The child keeps only that socket (never the public port), dies with its worker, runs at
the idle CPU class, and answers plain lists as JSON (never a pickle: its answers are untrusted).
A batch unanswered within its deadline, or a child that dies, is the challenger's failure: the
child is killed and another forked for a later batch (at most one fork per RESTART_PAUSE).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import struct
import time

import numpy as np
import orjson

from model_contract import logs

from .loader import ServedModel
from .validator import die_with_parent, name_process

HEADER = struct.Struct("!II")  # rows, columns of the float64 matrix that follows
LENGTH = struct.Struct("!I")  # bytes of the JSON answer that follows
RESTART_PAUSE = 1.0  # seconds after a child's death before another is forked
PROCESS_NAME = "shadow"
log = logs.get(__name__)


class ShadowFailed(Exception):
    """The child did not answer a batch: it raised, overran its deadline, or died."""


class ShadowProcess:
    """One child scoring for one challenger; forked on first use, replaced after a failure."""

    def __init__(self, deadline: float):
        self._deadline = deadline
        self._model: ServedModel | None = None
        self._pid: int | None = None
        self._socket: socket.socket | None = None
        self._died_at = 0.0

    def predict(self, model: ServedModel, matrix: np.ndarray) -> tuple[list, list]:
        """The challenger's (labels, probabilities) for these rows, computed by the child."""
        if model is not self._model or self._socket is None:
            self._start(model)
        assert self._socket is not None
        matrix = np.ascontiguousarray(matrix, dtype=np.float64)
        try:
            self._socket.settimeout(self._deadline)
            self._socket.sendall(HEADER.pack(*matrix.shape) + matrix.tobytes())
            answer = orjson.loads(_receive(self._socket, LENGTH.unpack(
                _exactly(self._socket, LENGTH.size))[0]))
        except (OSError, EOFError, ValueError) as exc:  # timeout, EOF, garbage: it is done
            self.stop()
            raise ShadowFailed(_why(exc, self._deadline)) from None
        if "error" in answer:
            raise ShadowFailed(str(answer["error"]))
        return answer["labels"], answer["probabilities"]

    def _start(self, model: ServedModel) -> None:
        self.stop()
        if time.monotonic() - self._died_at < RESTART_PAUSE:
            raise ShadowFailed("the challenger's process died less than a second ago")
        parent, child = socket.socketpair()
        parent_pid = os.getpid()
        pid = os.fork()
        if pid == 0:  # the child: never returns
            parent.close()
            _serve(child, model, parent_pid)
        child.close()
        self._model, self._pid, self._socket = model, pid, parent
        log.warning("shadow_process_started", pid=pid, version=model.version,
                    after_failure=self._died_at > 0)

    def stop(self) -> None:
        """Kill the child (if any) and reap it."""
        if self._socket is not None:
            self._socket.close()
        if self._pid is not None:
            with contextlib.suppress(OSError):
                os.kill(self._pid, signal.SIGKILL)
            with contextlib.suppress(OSError):
                os.waitpid(self._pid, 0)
            self._died_at = time.monotonic()
        self._pid = self._socket = self._model = None


def _why(exc: Exception, deadline: float) -> str:
    if isinstance(exc, TimeoutError):
        return f"the challenger took longer than PREDICT_TIMEOUT={deadline:g}s"
    return f"the challenger's process failed: {type(exc).__name__}"


def _exactly(connection: socket.socket, size: int) -> bytes:
    data = _receive(connection, size)
    if len(data) < size:
        raise EOFError("closed")
    return data


def _receive(connection: socket.socket, size: int) -> bytes:
    parts, left = [], size
    while left:
        part = connection.recv(min(left, 1 << 20))
        if not part:
            raise EOFError("closed")
        parts.append(part)
        left -= len(part)
    return b"".join(parts)


def _serve(connection: socket.socket, model: ServedModel, parent: int) -> None:
    """The child's life: score what arrives until the socket closes, then exit."""
    code = 0
    try:
        _isolate(connection.fileno(), parent)
        while True:
            rows, columns = HEADER.unpack(_exactly(connection, HEADER.size))
            raw = _exactly(connection, rows * columns * 8)
            matrix = np.frombuffer(raw, dtype=np.float64).reshape(rows, columns)
            connection.sendall(_answer(model, matrix))
    except BaseException:
        code = 1
    finally:
        os._exit(code)


def _isolate(keep: int, parent: int) -> None:
    """Only the socket to the worker stays open; die with it; take only idle CPU."""
    die_with_parent(parent)
    os.closerange(3, keep)
    os.closerange(keep + 1, 1 << 16)
    signal.signal(signal.SIGALRM, signal.SIG_IGN)
    name_process(PROCESS_NAME)
    with contextlib.suppress(AttributeError, OSError):
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))


def _answer(model: ServedModel, matrix: np.ndarray) -> bytes:
    """The challenger's answer as JSON (its failure too), length first."""
    from .shadow import checked_answers

    try:
        labels, probabilities = checked_answers(model.predictor.predict(matrix), len(matrix))
        body = orjson.dumps({"labels": labels, "probabilities": probabilities})
    except Exception as exc:
        body = orjson.dumps({"error": f"{type(exc).__name__}: {str(exc)[:200]}"})
    return LENGTH.pack(len(body)) + body
