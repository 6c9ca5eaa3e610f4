"""The Comet registry REST client: requests + tenacity, typed errors, streamed downloads.

Every call has a timeout. Connection errors, timeouts, 429 and 500/502/503/504 are retried with
exponential backoff and jitter, honouring `Retry-After` and Comet's `Retry-After-Custom`; after
the last attempt they become CometUnavailable. 400/401/403/404 are never retried: they become
the typed errors of errors.py, with messages that say what to fix and never hold the key.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
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
from tenacity.stop import stop_base
from tenacity.wait import wait_base

from model_contract import logs

from . import __version__
from .config import CometSettings
from .errors import (
    BadRequest,
    BadResponse,
    CometError,
    CometUnavailable,
    ModelNotFound,
    Unauthorized,
    VersionNotFound,
    WorkspaceNotFound,
)
from .registry import RegistryModel, check_identity, parse_model

log = logs.get(__name__)

API = "/api/rest/v2/"
RETRYABLE_STATUS = {429, 500, 502, 503, 504}
CHUNK_SIZE = 256 * 1024  # small enough that a stop request or a deadline is seen quickly
MIN_DOWNLOAD_RATE = 128 * 1024  # bytes/s below which a drip-feeding download is given up
ProgressFn = Callable[[int, int | None], None]


class _Retryable(Exception):
    """A failure worth another attempt, with the server's hint of when, if any."""

    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


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


def retry_after_seconds(headers: Mapping[str, str]) -> float | None:
    """Seconds the server asks us to wait, from Retry-After or Retry-After-Custom."""
    for name in ("Retry-After", "Retry-After-Custom"):
        value = headers.get(name)
        if value is None:
            continue
        try:
            return max(0.0, float(value))
        except ValueError:
            continue  # an HTTP-date: not sent by Comet; fall back to our own backoff
    return None


class CometClient:
    """A client of one Comet workspace's model registry."""

    def __init__(self, settings: CometSettings, session: requests.Session | None = None,
                 sleep: Callable[[float], None] = time.sleep, attempts: int = 5,
                 max_wait: float = 30.0, clock: Callable[[], float] = time.monotonic):
        self.settings = settings
        self.workspace = settings.workspace
        self._session = session or requests.Session()
        self._session.headers["User-Agent"] = f"registry-sync/{__version__}"
        self._clock = clock
        self._retrying = Retrying(
            retry=retry_if_exception_type(_Retryable),
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
        key = self.settings.read_api_key()
        logs.redact(key)
        return {"Authorization": key}

    def _call(self, method: str, path: str, *, not_found: CometError | None = None,
              **kwargs: Any) -> requests.Response:
        """One API call with retries; returns a 2xx response or raises a typed error."""
        try:
            return self._retrying(self._attempt, method, path, not_found, **kwargs)
        except _Retryable as exc:
            raise self._unavailable(exc) from exc

    def _attempt(self, method: str, path: str, not_found: CometError | None,
                 **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", self.settings.timeout)
        headers = {**self._headers(), **kwargs.pop("extra_headers", {})}
        try:
            response = self._session.request(method, self._url(path), headers=headers, **kwargs)
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise _Retryable(f"{method} {path}: {type(exc).__name__}") from exc
        if response.status_code < 400:
            return response
        response.close()
        raise self._error(method, path, response, not_found)

    def _error(self, method: str, path: str, response: requests.Response,
               not_found: CometError | None) -> Exception:
        status = response.status_code
        message = _error_message(response)
        if status in RETRYABLE_STATUS:
            return _Retryable(f"{method} {path}: HTTP {status} {message}".strip(),
                              retry_after_seconds(response.headers))
        if status in (401, 403):
            return Unauthorized(f"the registry refused the API key (HTTP {status}): check "
                                "COMET_API_KEY / COMET_API_KEY_FILE and access to workspace "
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

    def server_info(self) -> dict[str, Any]:
        """The server's isAlive/ver answer (its version, and whether it is a local registry)."""
        response = self._call("GET", "/clientlib/isAlive/ver")
        return self._json(response, "isAlive/ver")

    def list_model_names(self) -> list[str]:
        """Names of the registry models in the workspace."""
        body = self._get("registry-model", workspaceName=self.workspace)
        return [m["modelName"] for m in body.get("registryModels") or ()]

    def get_model(self, name: str) -> RegistryModel:
        """One registry model with all its versions: one request."""
        body = self._get("registry-model/details", ModelNotFound(self.workspace, name),
                         workspaceName=self.workspace, modelName=name)
        check_identity(body, self.workspace, name)
        return parse_model(self.workspace, body)

    def download(self, name: str, version: str, dest: Path, progress: ProgressFn | None = None,
                 expected_size: int | None = None) -> int:
        """Stream the version's zip into dest in chunks; return its size in bytes."""
        try:
            return self._retrying(self._download_once, name, version, dest, progress,
                                  expected_size)
        except _Retryable as exc:
            raise self._unavailable(exc) from exc

    def _unavailable(self, exc: _Retryable) -> CometUnavailable:
        error = CometUnavailable(f"registry {self.settings.url} unavailable: {exc}")
        error.retry_after = exc.retry_after
        return error

    def _download_once(self, name: str, version: str, dest: Path, progress: ProgressFn | None,
                       expected_size: int | None) -> int:
        params = {"workspaceName": self.workspace, "modelName": name, "version": version}
        timeout = (self.settings.timeout, self.settings.download_timeout)
        response = self._attempt("GET", "registry-model/item/download",
                                 VersionNotFound(self.workspace, name, version), params=params,
                                 stream=True, timeout=timeout)
        total = _content_length(response) or expected_size
        deadline = self._clock() + self.settings.download_timeout + (total or 0) / MIN_DOWNLOAD_RATE
        received = 0
        try:
            with response, open(dest, "wb") as out:
                for chunk in _arriving_chunks(response):
                    out.write(chunk)
                    received += len(chunk)
                    if progress:
                        progress(received, total)
                    if self._clock() > deadline:
                        raise _Retryable(f"download of {name} {version} too slow: "
                                         f"{received} bytes by the deadline")
        except (requests.ConnectionError, requests.Timeout,
                requests.exceptions.ChunkedEncodingError) as exc:
            raise _Retryable(f"download of {name} {version} cut short after {received} bytes: "
                             f"{type(exc).__name__}") from exc
        if _content_length(response) not in (None, received):
            raise _Retryable(f"download of {name} {version} cut short: {received} of "
                             f"{_content_length(response)} bytes")
        return received

    def set_status(self, name: str, version: str, status: str) -> None:
        """Set a version's status (promote or demote), as the Comet UI does."""
        item = self._item_id(name, version)
        self._call("POST", "write/registry-model/item/status",
                   json={"status": status, "modelItemId": item})

    def add_tag(self, name: str, version: str, tag: str) -> None:
        """Add a tag (the old "stage") to a version."""
        self._call("GET", "write/registry-model/item/stage",
                   params={"modelItemId": self._item_id(name, version), "stage": tag})

    def remove_tag(self, name: str, version: str, tag: str) -> None:
        """Remove a tag from a version."""
        self._call("GET", "write/registry-model/item/stage/delete",
                   params={"modelItemId": self._item_id(name, version), "stage": tag})

    def _item_id(self, name: str, version: str) -> str:
        found = self.get_model(name).version(version)
        if found is None:
            raise VersionNotFound(self.workspace, name, version)
        return found.registry_model_item_id

    def upload(self, name: str, version: str, archive: Path, *, status: str = "None",
               tags: tuple[str, ...] = (), comment: str = "",
               experiment_key: str = "") -> dict[str, Any]:
        """Register a version with its zipped files through the local registry's upload call."""
        params = {"workspaceName": self.workspace, "registryModelName": name,
                  "version": version, "status": status, "tags": ",".join(tags),
                  "comment": comment, "experimentKey": experiment_key}
        # One attempt only: a streamed body cannot be replayed, and a retry could register twice.
        with open(archive, "rb") as body:
            try:
                response = self._attempt(
                    "POST", "write/registry-model/item/upload", None,
                    params={k: v for k, v in params.items() if v}, data=body,
                    extra_headers={"Content-Type": "application/zip"},
                    timeout=(self.settings.timeout, self.settings.download_timeout))
            except _Retryable as exc:
                raise CometUnavailable(f"upload of {name} {version} failed: {exc}") from exc
        return self._json(response, "item/upload")


def _arriving_chunks(response: requests.Response) -> Iterator[bytes]:
    """The streamed body in pieces as they arrive, each at most CHUNK_SIZE bytes.

    Unlike iter_content, which waits until a whole chunk is there, this returns whatever a read
    gets, so a server dripping bytes cannot hold the loop (and its deadline check) for long.
    urllib3's errors become requests' own, as iter_content would raise them.
    """
    raw = response.raw
    try:
        while chunk := raw.read1(CHUNK_SIZE, decode_content=True):
            yield chunk
    except urllib3.exceptions.ReadTimeoutError as exc:
        raise requests.exceptions.ReadTimeout(str(exc)) from exc
    except urllib3.exceptions.HTTPError as exc:
        raise requests.exceptions.ChunkedEncodingError(str(exc)) from exc


def _content_length(response: requests.Response) -> int | None:
    value = response.headers.get("Content-Length")
    return int(value) if value and value.isdigit() else None


def _error_message(response: requests.Response) -> str:
    """The `msg` of Comet's error body, or a short excerpt of whatever came back."""
    try:
        body = response.json()
        if isinstance(body, dict) and body.get("msg"):
            return str(body["msg"])[:300]
    except ValueError:
        pass
    return (response.text or "")[:200]
