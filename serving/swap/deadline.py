"""A deadline on every model call: PREDICT_TIMEOUT, past which the call is stopped.

A model call runs on the worker's request thread (the main thread under the front). The
deadline is an interval timer: SIGALRM's handler raises `Overran` inside the model's code at
the next bytecode, which also interrupts a sleep or a lock wait. `Overran` is a BaseException,
so a model's `except Exception` cannot swallow it, and the timer repeats every RETRY_SECONDS
until the call has left, so a model that catches everything is asked again. What the handler
cannot stop (a C call that holds the GIL) is for the front's master: `CALLS` stamps each call in
memory the master reads (serving.front.calls), and it kills a worker whose call outlives the
hard deadline. Off the main thread (tests, other servers) the call is timed instead: an answer
that arrives late is refused all the same.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from typing import Protocol, TypeVar

from serving.errors import PredictionTimeout

T = TypeVar("T")
CHAMPION, CHALLENGER = 1, 2  # which role's call a worker is in, as its stamp says
RETRY_SECONDS = 0.05  # after the first alarm, how often a call that swallowed it is asked again


class Overran(BaseException):
    """Raised by the alarm inside a model's code; never escapes `bounded`."""


class CallStamps(Protocol):
    """Where a worker says which model call it is in (the master's hard deadline reads it)."""

    def started(self, role: int) -> None:
        """A model call of this role (serving.front.calls) begins."""

    def ended(self) -> None:
        """The call has returned or been stopped."""


class _NoStamps:
    def started(self, role: int) -> None:
        """No master watches this process."""

    def ended(self) -> None:
        """No master watches this process."""


CALLS: CallStamps = _NoStamps()  # the front's worker sets its shared slot here
_armed = False  # True only while a bounded call runs: a late alarm elsewhere does nothing


def _alarm(signum, frame) -> None:
    if _armed:
        raise Overran()


def bounded(seconds: float, role: int, call: Callable[[], T]) -> T:
    """call()'s result, or PredictionTimeout once it has run `seconds`."""
    if threading.current_thread() is not threading.main_thread():
        return _timed(seconds, call)  # a signal's handler runs on the main thread only
    outer = signal.getsignal(signal.SIGALRM)
    if outer is not _alarm:
        signal.signal(signal.SIGALRM, _alarm)
    global _armed
    CALLS.started(role)
    started = time.monotonic()
    try:
        try:
            _armed = True
            previous = signal.setitimer(signal.ITIMER_REAL, seconds, RETRY_SECONDS)
            return call()
        finally:
            _disarm()
    except Overran:
        _disarm()  # the alarm may have landed in the finally above, before it disarmed
        raise PredictionTimeout(seconds) from None
    finally:
        if callable(outer) and outer is not _alarm:  # someone else's alarm: give it back
            _give_back(outer, previous, time.monotonic() - started)


def _disarm() -> None:
    global _armed
    _armed = False
    signal.setitimer(signal.ITIMER_REAL, 0)
    CALLS.ended()


def _give_back(handler: Callable, timer: tuple[float, float], spent: float) -> None:
    """Reinstate another user's SIGALRM handler and what was left of its timer."""
    signal.signal(signal.SIGALRM, handler)
    if timer[0] > 0:
        signal.setitimer(signal.ITIMER_REAL, max(timer[0] - spent, 1e-6), timer[1])


def _timed(seconds: float, call: Callable[[], T]) -> T:
    """Off the main thread: the call runs to its end; a late answer is refused."""
    started = time.perf_counter()
    result = call()
    if time.perf_counter() - started > seconds:
        raise PredictionTimeout(seconds)
    return result
