"""The challenger's shadow calls in a process of their own, so they cannot take the champion's GIL.

In the worker's interpreter a challenger that computes (a Python loop, a long C call holding the
GIL) delays every request of that worker, whatever the scoring thread's priority: the GIL is not
scheduled by the OS. So the scoring thread forks a child holding the challenger (it shares the
worker's memory, copy on write: no second load) and hands it each batch's matrix over a socket
pair. The child keeps only that socket (never the public port), dies with its worker, runs under
SCHED_IDLE (only on CPU the workers leave: serving.swap.priority; nice 19 where refused), and
answers plain lists as JSON (never a pickle: its answers are untrusted): a label and its
probability per row, and with more than two classes every class's probability. Its deadline is
CPU time, so a busy machine that starves it is not its failure: each call may burn
PREDICT_TIMEOUT of CPU, then the kernel kills the child (SIGPROF, no Python needed, the GIL held
or not); a call that burns nothing (a sleep, a trickled answer) is cut at WALL_FACTOR times that
by the worker, for the whole exchange, not counting the time the child waited for a CPU (a
starved call only holds its batch: the queue behind it fills and drops, counted, and fewer
inputs get compared). An answer announced longer than its rows can need (`answer_limit`) is
refused before a byte of it is read. A failed batch, or a child that dies, is the challenger's
failure: the child is killed and another forked for a later batch, after a pause that doubles at
each failure in a row (each fork copies the worker's page tables and costs its requests a
little).
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
from serving.model import predictions
from serving.model.loader import ServedModel
from serving.model.predictions import Predictions
from serving.swap.priority import Policy, run_queue_wait, runnable, yield_cpu
from serving.swap.validator import die_with_parent, name_process

HEADER = struct.Struct("!II")  # rows, columns of the float64 matrix that follows
LENGTH = struct.Struct("!I")  # bytes of the JSON answer that follows
RESTART_PAUSE = 1.0  # seconds after a child's death before another is forked; doubled in a row
LONGEST_PAUSE = 60.0
WALL_FACTOR = 20  # a call's wall-clock deadline, in CPU deadlines (waiting for a CPU not counted)
RUNNABLE_GRACE = 0.05  # seconds more for a child still runnable at its wall-clock deadline
MAX_LABEL_CHARS = 256  # a class name longer than this is an error the child answers
NUMBER_CHARS = 25  # the longest JSON float (-1.2345678901234567e-308) and its comma
ANSWER_OVERHEAD = 4096  # bytes of an answer beside its rows (an error's text, the JSON keys)
PROCESS_NAME = "shadow"
log = logs.get(__name__)


class ShadowFailed(Exception):
    """The child did not answer a batch: it raised, overran its deadline, or died."""


class AnswerTooLarge(Exception):
    """The child announced more bytes than an answer for its rows can hold."""


class ShadowProcess:
    """One child scoring for one challenger; forked on first use, replaced after a failure."""

    def __init__(self, deadline: float):
        self._deadline = deadline
        self._model: ServedModel | None = None
        self._pid: int | None = None
        self._socket: socket.socket | None = None
        self._died_at = 0.0
        self._pause = RESTART_PAUSE  # the wait after the next death
        self._wait = 0.0  # the wait after the last one

    def predict(self, model: ServedModel, matrix: np.ndarray) -> Predictions:
        """The challenger's Predictions for these rows, computed by the child."""
        if model is not self._model or self._socket is None:
            self._start(model)
        assert self._socket is not None and self._pid is not None
        matrix = np.ascontiguousarray(matrix, dtype=np.float64)
        classes = model.schema.classes
        limit = answer_limit(len(matrix), len(classes))
        ends = WallDeadline(self._pid, self._deadline * WALL_FACTOR)  # for the whole exchange
        try:
            _send(self._socket, HEADER.pack(*matrix.shape) + matrix.tobytes(), ends)
            (size,) = LENGTH.unpack(_exactly(self._socket, LENGTH.size, ends))
            if size > limit:
                raise AnswerTooLarge(f"the challenger's process announced an answer of {size} "
                                     f"bytes for {len(matrix)} rows (at most {limit})")
            answer = orjson.loads(_receive(self._socket, size, ends))
        except AnswerTooLarge as exc:
            self.stop()
            raise ShadowFailed(str(exc)) from None
        except (OSError, EOFError, ValueError) as exc:  # timeout, EOF, garbage: it is done
            self.stop()
            raise ShadowFailed(_why(exc, self._deadline)) from None
        self._pause = RESTART_PAUSE  # it answered: a later death pauses as the first
        if "error" in answer:
            raise ShadowFailed(str(answer["error"]))
        return predictions.from_json(answer, classes)

    def _start(self, model: ServedModel) -> None:
        self.stop()
        if time.monotonic() - self._died_at < self._wait:
            raise ShadowFailed(f"the challenger's process died less than {self._wait:g}s ago")
        parent, child = socket.socketpair()
        parent_pid = os.getpid()
        pid = os.fork()
        if pid == 0:  # the child: never returns
            parent.close()
            _serve(child, model, parent_pid, self._deadline)
        child.close()
        # Set from here before it gets a matrix (it only waits for one until then), so that a
        # refusal is logged once per worker, not once per child.
        cpu = yield_cpu(pid, Policy.IDLE, PROCESS_NAME)
        self._model, self._pid, self._socket = model, pid, parent
        log.info("shadow_process_started", pid=pid, version=model.version, cpu=cpu)

    def stop(self) -> None:
        """Kill the child (if any) and reap it."""
        if self._socket is not None:
            self._socket.close()
        if self._pid is not None:
            with contextlib.suppress(OSError):
                os.kill(self._pid, signal.SIGKILL)
            with contextlib.suppress(OSError):
                os.waitpid(self._pid, 0)
            self._died_at, self._wait = time.monotonic(), self._pause
            self._pause = min(self._pause * 2, LONGEST_PAUSE)
        self._pid = self._socket = self._model = None


def _why(exc: Exception, deadline: float) -> str:
    if isinstance(exc, TimeoutError):
        return (f"the challenger took longer than {deadline * WALL_FACTOR:g}s (not counting "
                "its waits for a CPU)")
    return ("the challenger's process died (it used more than PREDICT_TIMEOUT="
            f"{deadline:g}s of CPU, or crashed): {type(exc).__name__}")


def answer_limit(rows: int, classes: int = 0) -> int:
    """The most bytes an answer for `rows` rows may announce (a label of MAX_LABEL_CHARS and a
    probability per row, with more than two classes a number per class and row, an error's
    text): more is a lie or a flood, refused before a byte."""
    per_class = classes * NUMBER_CHARS if classes > 2 else 0
    return ANSWER_OVERHEAD + rows * (4 * MAX_LABEL_CHARS + 64 + per_class)


class WallDeadline:
    """A call's wall-clock deadline, moved back by the time the child spent waiting for a CPU:
    a busy machine may starve it (SCHED_IDLE) without that being its failure.

    The kernel counts a wait once it ends, so a child still waiting (runnable) when the deadline
    passes gets RUNNABLE_GRACE more, again and again: it can stay runnable only by waiting or by
    computing, and its computing is bounded by its CPU deadline. Only sleeping runs the clock.
    """

    def __init__(self, pid: int, seconds: float):
        self._pid, self._ends = pid, time.monotonic() + seconds
        self._waited = run_queue_wait(pid)

    def remaining(self) -> float:
        """Seconds left (0 or less: passed); /proc is read again only once it seems to."""
        left = self._ends - time.monotonic()
        if left <= 0:
            waited = run_queue_wait(self._pid)
            self._ends += waited - self._waited
            self._waited = waited
            if runnable(self._pid):
                self._ends = max(self._ends, time.monotonic() + RUNNABLE_GRACE)
            left = self._ends - time.monotonic()
        return left


def _send(connection: socket.socket, data: bytes, ends: WallDeadline) -> None:
    """All of `data`; TimeoutError once `ends` passes (a child that stops reading)."""
    view = memoryview(data)
    while view:
        connection.settimeout(_left(ends))
        try:
            sent = connection.send(view)
        except TimeoutError:
            continue  # the deadline may have moved: the child was waiting for a CPU
        view = view[sent:]


def _left(ends: WallDeadline) -> float:
    remaining = ends.remaining()
    if remaining <= 0:
        raise TimeoutError("the answer's deadline passed")
    return remaining


def _exactly(connection: socket.socket, size: int, ends: WallDeadline | None = None) -> bytes:
    data = _receive(connection, size, ends)
    if len(data) < size:
        raise EOFError("closed")
    return data


def _receive(connection: socket.socket, size: int, ends: WallDeadline | None = None) -> bytes:
    """`size` bytes; TimeoutError once `ends` passes (a trickle too), EOFError if the other end
    closes first."""
    parts, left = [], size
    while left:
        if ends is not None:
            connection.settimeout(_left(ends))
        try:
            part = connection.recv(min(left, 1 << 20))
        except TimeoutError:
            if ends is None:
                raise
            continue  # the deadline may have moved: the child was waiting for a CPU
        if not part:
            raise EOFError("closed")
        parts.append(part)
        left -= len(part)
    return b"".join(parts)


def _serve(connection: socket.socket, model: ServedModel, parent: int, cpu: float) -> None:
    """The child's life: score what arrives until the socket closes, then exit."""
    code = 0
    try:
        _isolate(connection.fileno(), parent)
        while True:
            rows, columns = HEADER.unpack(_exactly(connection, HEADER.size))
            raw = _exactly(connection, rows * columns * 8)
            matrix = np.frombuffer(raw, dtype=np.float64).reshape(rows, columns)
            signal.setitimer(signal.ITIMER_PROF, cpu)  # past it, SIGPROF kills this process
            answer = _answer(model, matrix)
            signal.setitimer(signal.ITIMER_PROF, 0)
            connection.sendall(answer)
    except BaseException:
        code = 1
    finally:
        os._exit(code)


def _isolate(keep: int, parent: int) -> None:
    """Only the socket to the worker stays open; die with it (the worker lowers its CPU
    policy)."""
    die_with_parent(parent)
    os.closerange(3, keep)
    os.closerange(keep + 1, 1 << 16)
    signal.signal(signal.SIGALRM, signal.SIG_IGN)
    signal.signal(signal.SIGPROF, signal.SIG_DFL)  # the kernel's action: end the process
    name_process(PROCESS_NAME)


def _answer(model: ServedModel, matrix: np.ndarray) -> bytes:
    """The challenger's answer as JSON (its failure too), length first."""
    try:
        answer = predictions.checked(model.predictor.predict(matrix), len(matrix),
                                     model.schema.task)
        if any(len(label) > MAX_LABEL_CHARS for label in answer.labels):
            raise ValueError(f"a label longer than {MAX_LABEL_CHARS} characters")
        body = orjson.dumps(predictions.to_json(answer, model.schema.classes))
    except Exception as exc:
        body = orjson.dumps({"error": f"{type(exc).__name__}: {str(exc)[:200]}"})
    return LENGTH.pack(len(body)) + body
