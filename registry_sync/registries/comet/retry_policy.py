"""When to retry a registry call: the server's Retry-After hints, read safely, as tenacity phrases.

`retry_after_seconds` reads `Retry-After` or Comet's `Retry-After-Custom` (seconds or an
HTTP-date) without ever raising, and never answers inf, NaN or more than a day. The client
waits a hint up to its max wait; a longer one ends the call at once, the hint carried on the
error for the loop (which caps it at SYNC_MAX_BACKOFF).
"""

from __future__ import annotations

import datetime
import email.utils
import math
import time
from collections.abc import Callable, Mapping

from tenacity import RetryCallState
from tenacity.stop import stop_base
from tenacity.wait import wait_base

MAX_RETRY_HINT = 24 * 3600.0  # a Retry-After beyond a day is a broken server, not a plan


class wait_retry_after(wait_base):  # lower case: reads as a tenacity phrase
    """Wait what the server asked for (capped), else fall back to another wait."""

    def __init__(self, fallback: wait_base, cap: float):
        self.fallback, self.cap = fallback, cap

    def __call__(self, retry_state: RetryCallState) -> float:
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        hint = getattr(exc, "retry_after", None)
        if hint is not None:
            return min(hint, self.cap)
        return self.fallback(retry_state)


class stop_when_asked_to_wait_longer_than(stop_base):  # lower case: a tenacity phrase
    """Give up at once when the server asks for a longer wait than we will sleep in one call."""

    def __init__(self, cap: float):
        self.cap = cap

    def __call__(self, retry_state: RetryCallState) -> bool:
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        return (getattr(exc, "retry_after", None) or 0) > self.cap


def retry_after_seconds(headers: Mapping[str, str],
                        now: Callable[[], float] = time.time) -> float | None:
    """Seconds the server asks us to wait (Retry-After or Retry-After-Custom), 0..a day, or None.

    Never raises and never answers inf or NaN: seconds or an HTTP-date are read; anything else
    is ignored and our own backoff applies.
    """
    for name in ("Retry-After", "Retry-After-Custom"):
        seconds = _hint_seconds(headers.get(name), now)
        if seconds is not None:
            return seconds
    return None


def _hint_seconds(value: str | None, now: Callable[[], float]) -> float | None:
    if value is None or len(value) > 100:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value.strip())
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=datetime.UTC)
        seconds = when.timestamp() - now()
    if math.isnan(seconds):
        return None
    return min(max(seconds, 0.0), MAX_RETRY_HINT)
