"""A follower's wake-ups passed on to the leader: one thread, one call at a time, merged.

Any number of `request()` calls while a forward is pending or under way make one more forward
at most, at least `gap` seconds after the previous one: a burst of webhooks costs the leader one
wake-up per gap from each follower, and this sidecar one thread whatever the burst. The call
carries the peer credential (derived from DECISION_KEY), never the reload token.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from model_contract import logs, poll_now

from ..errors import RegistrySyncError

log = logs.get(__name__)


class Forwarder:
    """Forwards merged wake-ups to the newest leader URL on its own thread."""

    def __init__(self, token: Callable[[], str], gap: float = 1.0, timeout: float = 2.0):
        self._token, self._gap, self._timeout = token, gap, timeout
        self.wanted = threading.Event()
        self._target = ""
        self.forwarded = 0

    def request(self, leader_url: str) -> None:
        """Ask for one forward to leader_url (merged with any pending one)."""
        self._target = leader_url
        self.wanted.set()

    def run(self, stop: threading.Event) -> None:
        """Forward whenever asked, at most once per gap, until stopped."""
        while not stop.is_set():
            self.wanted.wait(1.0)
            if stop.is_set() or not self.wanted.is_set():
                continue
            self.wanted.clear()
            try:
                self._forward(self._target)
            except Exception as exc:  # a bug costs one forward, never the thread
                log.error("poll_now_forward_crashed", error_type=type(exc).__name__)
            stop.wait(self._gap)

    def _forward(self, leader_url: str) -> None:
        try:
            token = self._token()
        except (RegistrySyncError, OSError) as exc:  # the key file mid-rotation
            log.warning("poll_now_not_forwarded", leader=leader_url, error=str(exc)[:200])
            return
        try:
            status = poll_now.wake(leader_url, token, timeout=self._timeout)
        except poll_now.FAILURES as exc:
            log.warning("poll_now_not_forwarded", leader=leader_url,
                        error_type=type(exc).__name__)
            return
        self.forwarded += 1
        log.info("poll_now_forwarded", leader=leader_url, status=status)
