"""Talking to serving: the two-phase handover (validate a staged snapshot, then reload).

The validate protocol (docs/serving.md): 200 accepted, 422 rejected with a reason, 202 running
(asked again with the same POST every POLL_INTERVAL until VALIDATION_DEADLINE). "Serving is not
up" is only a refused connection (nothing listening): a reset, a dropped connection, a timeout or
a 5xx while validating is ServingUnavailable, so a candidate that kills what loads it is never
published unvalidated; the one exception is the front's 503 `serving_starting` (its admin listener
is up, no worker listens yet), which means the same as nothing listening.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable

import requests

from ..errors import ServingUnavailable, SnapshotRejected, Stopped

POLL_INTERVAL = 0.5
NOT_LISTENING = "not listening"  # reload's outcome when serving is not up (yet)
SERVING_STARTING = "serving_starting"  # serving.front.admin's error while no worker listens
CONNECT_TIMEOUT = 2.0


class Verdict(enum.Enum):
    """What serving said of a snapshot, when it did not refuse it."""

    ACCEPTED = "accepted"
    NOT_UP = "not up"  # nothing listens: serving validates `current` itself when it starts


def connection_refused(exc: BaseException) -> bool:
    """True when an error comes from a refused connection (ECONNREFUSED), at any depth."""
    seen: set[int] = set()
    pending: list[object] = [exc]
    while pending:
        error = pending.pop()
        if not isinstance(error, BaseException) or id(error) in seen:
            continue
        seen.add(id(error))
        if isinstance(error, ConnectionRefusedError):
            return True
        pending += [error.__cause__, error.__context__, getattr(error, "reason", None),
                    *error.args]
    return False


class ServingNotifier:
    """Asks serving's admin endpoints to validate and to reload snapshots."""

    def __init__(self, base_url: str, token: str | Callable[[], str],
                 session: requests.Session | None = None, validate_timeout: float = 300.0,
                 wait: Callable[[float], bool] | None = None,
                 clock: Callable[[], float] = time.monotonic):
        self._base = base_url.rstrip("/")
        self._session = session or requests.Session()
        self._token = token if callable(token) else (lambda: token)
        self._deadline = validate_timeout
        self._wait = wait or _sleep
        self._clock = clock

    def _post(self, path: str, snapshot_id: str, timeout: float) -> requests.Response:
        return self._session.post(self._base + path, json={"snapshot": snapshot_id},
                                  headers={"Authorization": f"Bearer {self._token()}"},
                                  timeout=(CONNECT_TIMEOUT, max(timeout, 0.1)))

    def validate(self, snapshot_id: str) -> Verdict:
        """ACCEPTED or NOT_UP; SnapshotRejected, ServingUnavailable, or Stopped otherwise."""
        deadline = self._clock() + self._deadline
        while True:
            response = self._ask(snapshot_id, deadline - self._clock())
            if response is None:
                return Verdict.NOT_UP
            if response.status_code == 200:
                return Verdict.ACCEPTED
            if response.status_code == 422:
                raise SnapshotRejected(snapshot_id, _reason(response))
            if response.status_code != 202:
                raise ServingUnavailable(f"serving answered HTTP {response.status_code} to "
                                         f"validation of {snapshot_id}: {_reason(response)}")
            if self._clock() + POLL_INTERVAL > deadline:
                raise ServingUnavailable(f"validation of {snapshot_id} still running after "
                                         f"VALIDATION_DEADLINE={self._deadline:g}s")
            if self._wait(POLL_INTERVAL):
                raise Stopped("stop requested while serving validates")

    def _ask(self, snapshot_id: str, remaining: float) -> requests.Response | None:
        """One validate request; None when nothing listens (or serving's workers start)."""
        try:
            response = self._post("/-/validate", snapshot_id, remaining)
        except requests.ConnectionError as exc:
            if connection_refused(exc):
                return None
            raise ServingUnavailable(f"serving dropped the validation of {snapshot_id}: "
                                     f"{type(exc).__name__}") from exc
        except requests.Timeout as exc:
            raise ServingUnavailable(f"serving did not answer validation of {snapshot_id} "
                                     f"within VALIDATION_DEADLINE={self._deadline:g}s") from exc
        except requests.RequestException as exc:
            raise ServingUnavailable(f"validation of {snapshot_id} failed: "
                                     f"{type(exc).__name__}") from exc
        return None if starting(response) else response

    def reload(self, snapshot_id: str) -> str:
        """Ask serving to swap to the published snapshot now; return its outcome.

        NOT_LISTENING when nothing listens: serving loads `current` when it starts (the usual
        case when the sidecar starts first), so it is no failure.
        """
        try:
            response = self._post("/-/reload", snapshot_id, self._deadline)
        except requests.ConnectionError as exc:
            if connection_refused(exc):
                return NOT_LISTENING
            raise ServingUnavailable(f"reload of {snapshot_id} not sent: "
                                     f"{type(exc).__name__}") from exc
        except requests.RequestException as exc:
            raise ServingUnavailable(f"reload of {snapshot_id} not sent: "
                                     f"{type(exc).__name__}") from exc
        if starting(response):
            return NOT_LISTENING
        if response.status_code == 422:
            raise SnapshotRejected(snapshot_id, _reason(response))
        if response.status_code != 200:
            raise ServingUnavailable(f"serving answered HTTP {response.status_code} to reload")
        return str(_body(response).get("outcome", "ok"))


def starting(response: requests.Response) -> bool:
    """True for the front's admin listener saying no worker listens yet (503 serving_starting):
    as good as nothing listening, since each worker validates `current` as it starts."""
    return response.status_code == 503 and _body(response).get("error") == SERVING_STARTING


def _body(response: requests.Response) -> dict:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _reason(response: requests.Response) -> str:
    return str(_body(response).get("reason") or response.text[:200] or "no reason given")


def _sleep(seconds: float) -> bool:
    """Wait without a stop to notice: never asked to stop."""
    time.sleep(seconds)
    return False
