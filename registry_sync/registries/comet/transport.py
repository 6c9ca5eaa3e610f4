"""The Comet REST transport: requests + tenacity, typed errors, bounded calls.

Every call has an overall deadline (COMET_TIMEOUT for the whole answer, not only between bytes;
downloads have theirs in transfer.py). Connection errors, timeouts, 429 and 500/502/503/504 are
retried with exponential backoff and jitter, honouring `Retry-After` and Comet's
`Retry-After-Custom` (parsed without ever raising, capped at a day; a hint longer than the
client's max wait ends the call at once, the hint carried on CometUnavailable for the loop).
After the last attempt they become CometUnavailable. 400/401/402/403/404 are never retried: they
become the typed errors of errors.py, with messages that say what to fix and never hold the key.
Every request is counted per endpoint template through `on_request`, for the sidecar's metrics.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import requests
import urllib3
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential_jitter,
)

from model_contract import logs

from ... import __version__
from ...errors import (
    BadRequest,
    BadResponse,
    CometError,
    CometUnavailable,
    PaymentRequired,
    Unauthorized,
    WorkspaceNotFound,
)
from ...store.transfer import Retryable, arriving_chunks, deadline_after
from . import onprem
from .retry_policy import retry_after_seconds, stop_when_asked_to_wait_longer_than, wait_retry_after
from .settings import CometSettings

log = logs.get(__name__)

API = "/api/rest/v2/"
RETRYABLE_STATUS = {429, 500, 502, 503, 504}
MAX_JSON_BYTES = 64 * 1024 * 1024  # a details answer of thousands of versions is far below
ProgressFn = Callable[[int, int | None], None]
RequestCounter = Callable[[str, int], None]


class CometTransport:
    """Requests to one Comet server: its key, retries, deadlines, and errors typed."""

    def __init__(self, settings: CometSettings, session: requests.Session | None = None,
                 sleep: Callable[[float], None] = time.sleep, attempts: int = 5,
                 max_wait: float = 30.0, clock: Callable[[], float] = time.monotonic,
                 on_request: RequestCounter | None = None):
        self.settings = settings
        self.workspace = settings.workspace
        self._on_request = on_request
        self._session = session or requests.Session()
        self._session.headers["User-Agent"] = f"registry-sync/{__version__}"
        onprem.prepare(self._session, settings.ca_bundle)
        self._clock = clock
        self._retrying = Retrying(
            retry=retry_if_exception_type(Retryable),
            wait=wait_retry_after(wait_exponential_jitter(multiplier=0.5, max=max_wait), max_wait),
            stop=stop_after_attempt(attempts) | stop_when_asked_to_wait_longer_than(max_wait),
            sleep=sleep,
            reraise=True,
            before_sleep=self._log_retry,
        )

    @staticmethod
    def _log_retry(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        log.warning("registry_retry", attempt=state.attempt_number, error=str(exc),
                    wait_seconds=round(state.upcoming_sleep, 2))

    def _url(self, path: str) -> str:
        """Paths are relative to the REST API root unless they start with '/'."""
        return self.settings.url + (path if path.startswith("/") else API + path)

    def _headers(self) -> dict[str, str]:
        """The key, and the gateway's allow header: only ever sent to the Comet server."""
        key = self.settings.read_api_key()
        logs.redact(key)
        allow = self.settings.allow_header
        if allow is None:
            return {"Authorization": key}
        logs.redact(allow[1])
        return {"Authorization": key, allow[0]: allow[1]}

    def _call(self, method: str, path: str, *, not_found: CometError | None = None,
              **kwargs: Any) -> requests.Response:
        """One API call with retries; returns a 2xx response, body read, or a typed error."""
        return self.retrying(self._attempt_whole, method, path, not_found, **kwargs)

    def retrying(self, attempt: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run attempt with the client's retries; Retryable becomes CometUnavailable at the end."""
        try:
            return self._retrying(attempt, *args, **kwargs)
        except Retryable as exc:
            raise self._unavailable(exc) from exc

    def _attempt_whole(self, method: str, path: str, not_found: CometError | None,
                       **kwargs: Any) -> requests.Response:
        """One attempt whose whole answer must arrive within COMET_TIMEOUT."""
        deadline = self._clock() + self.settings.timeout
        response = self.attempt(method, path, not_found, stream=True, **kwargs)
        body, size = [], 0
        try:
            with response:
                for chunk in arriving_chunks(response):
                    size += len(chunk)
                    if size > MAX_JSON_BYTES:
                        raise BadResponse(f"{path}: the registry's answer is over "
                                          f"{MAX_JSON_BYTES} bytes")
                    if self._clock() > deadline:
                        raise Retryable(f"{method} {path}: the answer took longer than "
                                        f"COMET_TIMEOUT={self.settings.timeout:g}s")
                    body.append(chunk)
        except (requests.ConnectionError, requests.Timeout,
                requests.exceptions.ChunkedEncodingError) as exc:
            raise Retryable(f"{method} {path}: answer cut short: {type(exc).__name__}") from exc
        response._content = b"".join(body)  # what requests itself does for a non-streamed call
        return response

    def attempt(self, method: str, path: str, not_found: CometError | None, *,
                endpoint: str | None = None, authenticate: bool = True,
                **kwargs: Any) -> requests.Response:
        """One request, no retry: a response under 400, else Retryable or a typed error.

        `path` may be an absolute URL (a presigned link, sent without the key); `endpoint`
        is the path template it is counted under.
        """
        kwargs.setdefault("timeout", self.settings.timeout)
        headers = {**(self._headers() if authenticate else {}),
                   **kwargs.pop("extra_headers", {})}
        url = path if path.startswith(("http://", "https://")) else self._url(path)
        label = endpoint or path
        try:
            response = self._session.request(method, url, headers=headers, **kwargs)
        except (requests.ConnectionError, requests.Timeout) as exc:
            self._count(label, 0)
            raise Retryable(f"{method} {label}: {type(exc).__name__}") from exc
        self._count(label, response.status_code)
        if response.status_code < 400:
            return response
        _read_error_body(response)
        raise self._error(method, label, response, not_found)

    def _count(self, endpoint: str, status: int) -> None:
        if self._on_request is not None:
            self._on_request(endpoint, status)

    def _error(self, method: str, path: str, response: requests.Response,
               not_found: CometError | None) -> Exception:
        status = response.status_code
        message = _error_message(response)
        if status in RETRYABLE_STATUS:
            return Retryable(f"{method} {path}: HTTP {status} {message}".strip(),
                             retry_after_seconds(response.headers))
        if status in (401, 403):
            return Unauthorized(f"the registry refused the API key (HTTP {status}): check "
                                "COMET_API_KEY / COMET_API_KEY_FILE and access to workspace "
                                f"{self.workspace!r}")
        if status == 402:
            return PaymentRequired(f"the registry refused {path} for a plan limit (HTTP 402 "
                                   f"{message}): check the Comet plan and usage of workspace "
                                   f"{self.workspace!r}")
        if status == 404 and not_found is not None:
            return not_found
        if status == 400 and "constraint" in message.lower():
            return WorkspaceNotFound(f"workspace {self.workspace!r} not found (HTTP 400 "
                                     f"{message}): check COMET_WORKSPACE")
        return BadRequest(f"{method} {path}: HTTP {status} {message}".strip())

    def _json(self, response: requests.Response, path: str) -> dict[str, Any]:
        try:
            body = response.json()
        except ValueError:
            raise BadResponse(f"{path}: the registry's answer is not JSON") from None
        if not isinstance(body, dict):
            raise BadResponse(f"{path}: the registry's answer is not a JSON object")
        return body

    def _get(self, path: str, not_found: CometError | None = None, **params: str) -> dict:
        return self._json(self._call("GET", path, params=params, not_found=not_found), path)

    @property
    def clock(self) -> Callable[[], float]:
        """The monotonic clock deadlines are measured with."""
        return self._clock

    def _unavailable(self, exc: Retryable) -> CometUnavailable:
        error = CometUnavailable(f"registry {self.settings.url} unavailable: {exc}")
        error.retry_after = exc.retry_after
        return error

    def download_timeouts(self) -> tuple[float, float]:
        """(connect, between-bytes) timeouts of a download request."""
        return self.settings.timeout, self.settings.download_timeout

    def download_deadline(self, remaining: int) -> float:
        """When a download of `remaining` announced bytes, starting now, must be over."""
        return deadline_after(self._clock(), self.settings.download_timeout, remaining,
                              self.settings.min_download_rate)


def _read_error_body(response: requests.Response) -> None:
    """Keep at most 64 KiB of an error answer (Comet's small JSON body), then close it."""
    if response._content is False:  # a streamed answer whose body is not read yet
        try:
            response._content = response.raw.read(65536, decode_content=True) or b""
        except (urllib3.exceptions.HTTPError, OSError):
            response._content = b""
    response.close()


def _error_message(response: requests.Response) -> str:
    """The `msg` of Comet's error body, or a short excerpt of whatever came back."""
    try:
        body = response.json()
        if isinstance(body, dict) and body.get("msg"):
            return str(body["msg"])[:300]
    except ValueError:
        pass
    return (response.text or "")[:200]
