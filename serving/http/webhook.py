"""Comet's webhook: an early poll, never the truth.

`POST /api/v1/webhooks/comet` is public (Comet calls it through the serving Service). It answers
404 while WEBHOOK_SECRET is unset, 401 when the WEBHOOK_HEADER header does not carry the secret,
429 (with Retry-After) beyond WEBHOOK_PER_MINUTE accepted calls per minute in this worker, and
otherwise 202 after asking the local sidecar to poll now (`POST /-/poll-now` with the shared
token, on a background thread with a short timeout, so a slow sidecar never holds a worker).
Nothing of the body is read or logged: a forged or lost call can only move a poll earlier.
"""

from __future__ import annotations

import hmac
import threading
import time
from collections import deque

from flask import Blueprint, current_app, request

from model_contract import logs, poll_now

from .context import SETTINGS, error_response, json_response, reload_token, settings

log = logs.get(__name__)
bp = Blueprint("webhook", __name__)
WAKE_TIMEOUT = 2.0


class RateLimit:
    """At most `limit` events in any `window` seconds (a sliding log, thread-safe)."""

    def __init__(self, limit: int, window: float = 60.0, clock=time.monotonic):
        self.limit, self.window, self._clock = limit, window, clock
        self._times: deque[float] = deque()
        self._lock = threading.Lock()

    def admit(self) -> float:
        """0 if admitted (and counted), else the seconds until the next one would be."""
        with self._lock:
            now = self._clock()
            while self._times and now - self._times[0] >= self.window:
                self._times.popleft()
            if len(self._times) >= self.limit:
                return self.window - (now - self._times[0])
            self._times.append(now)
            return 0.0


LIMIT = "serving.webhook_limit"


@bp.record_once
def _set_up(state) -> None:
    """Per app: keep the secret out of logs, start an empty rate window."""
    config = state.app.extensions[SETTINGS]
    if config.webhook_secret:
        logs.redact(config.webhook_secret)
    state.app.extensions[LIMIT] = RateLimit(config.webhook_per_minute)


def _wake_sidecar(url: str, token: str | None) -> None:
    """Ask the sidecar to poll now; a failure is logged, never raised (polling continues)."""
    try:
        status = poll_now.wake(url, token or "", WAKE_TIMEOUT)
    except poll_now.FAILURES as exc:
        log.warning("webhook_not_forwarded", error_type=type(exc).__name__)
        return
    log.info("webhook_forwarded", status=status)


@bp.post("/api/v1/webhooks/comet")
def comet_webhook():
    """Check the secret and the rate, then wake the sidecar; 202."""
    config = settings()
    if not config.webhook_secret:
        return error_response(404, "not_found", "the webhook is off (WEBHOOK_SECRET is unset)")
    sent = request.headers.get(config.webhook_header, "")
    if not hmac.compare_digest(sent.encode(), config.webhook_secret.encode()):
        log.warning("webhook_refused", reason="missing or wrong secret")
        return error_response(401, "unauthorized", f"missing or wrong {config.webhook_header}")
    wait = current_app.extensions[LIMIT].admit()
    if wait:
        response = error_response(429, "too_many_requests",
                                  f"over {config.webhook_per_minute} webhook calls a minute")
        response.headers["Retry-After"] = str(max(1, round(wait)))
        return response
    threading.Thread(target=_wake_sidecar, args=(config.sidecar_url, reload_token()),
                     name="webhook-wake", daemon=True).start()
    return json_response({"accepted": True, "action": "poll"}, 202)
