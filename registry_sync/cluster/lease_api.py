"""One named Lease through the official client: read, create, replace, and watch it.

The packaged `kubernetes.leaderelection` is not used: its LeaseLock builds its own client from
the global default configuration (no injected ApiClient, so no rotated token hook or timeouts),
its loop blocks in `run()`, and it has no way to write annotations conditional on holding the
Lease. This module is the seam election.py and decision.py talk through; it maps the client's
errors to LeaseConflict / LeaseUnavailable and keeps the API server's JSON as sent (MicroTime
strings are not re-parsed).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from model_contract import logs

from .election import LeaseConflict, LeaseRecord, LeaseUnavailable, lease_body, record_from_lease

if TYPE_CHECKING:
    from kubernetes.client import ApiClient

log = logs.get(__name__)


def _errors() -> tuple[type[BaseException], ...]:
    import urllib3
    from kubernetes.client.exceptions import OpenApiException

    return (OpenApiException, urllib3.exceptions.HTTPError, OSError, ValueError, KeyError,
            TypeError)


def _describe(exc: BaseException) -> str:
    status = getattr(exc, "status", None)
    if isinstance(status, int):
        return f"HTTP {status} {getattr(exc, 'reason', '') or ''}".strip()
    return f"{type(exc).__name__}: {exc}"[:300]


class WatchExpired(Exception):
    """The resourceVersion a watch started from is too old (410 Gone): list again."""


class KubeLease:
    """The Lease `name` in `namespace`, through CoordinationV1Api."""

    def __init__(self, api_client: ApiClient, namespace: str, name: str,
                 timeout: tuple[float, float] = (2.0, 5.0)):
        from kubernetes import client

        self._api = client.CoordinationV1Api(api_client)
        self.namespace, self.name, self._timeout = namespace, name, timeout
        self._errors = _errors()

    def get(self) -> LeaseRecord | None:
        """The Lease, or None when it does not exist."""
        found = self._call(self._api.read_namespaced_lease, self.name, self.namespace,
                           missing_ok=True)
        return None if found is None else record_from_lease(found)

    def create(self, record: LeaseRecord) -> LeaseRecord:
        """Create the Lease; LeaseConflict if it already exists."""
        body = lease_body(self.name, self.namespace, record)
        return record_from_lease(self._call(self._api.create_namespaced_lease, self.namespace,
                                            body) or {})

    def replace(self, record: LeaseRecord) -> LeaseRecord:
        """Replace the Lease conditionally on record.resource_version; LeaseConflict if stale."""
        body = lease_body(self.name, self.namespace, record)
        return record_from_lease(self._call(self._api.replace_namespaced_lease, self.name,
                                            self.namespace, body) or {})

    def watch(self, resource_version: str, timeout_seconds: int,
              stopper: Callable[[Any], None] = lambda watch: None
              ) -> Iterator[tuple[str, LeaseRecord | None, str]]:
        """Yield (type, record or None for a BOOKMARK, resourceVersion) until the stream ends.

        Raises WatchExpired on 410 Gone, LeaseUnavailable on anything else going wrong.
        `stopper` receives the Watch so another thread can stop it.
        """
        from kubernetes import watch as kube_watch

        watcher = kube_watch.Watch()
        stopper(watcher)
        try:
            for event in watcher.stream(
                    self._api.list_namespaced_lease, self.namespace,
                    field_selector=f"metadata.name={self.name}", allow_watch_bookmarks=True,
                    resource_version=resource_version, timeout_seconds=timeout_seconds,
                    _request_timeout=(self._timeout[0], timeout_seconds + self._timeout[1])):
                raw = event["raw_object"]
                version = str((raw.get("metadata") or {}).get("resourceVersion") or "")
                if event["type"] == "BOOKMARK":
                    yield "BOOKMARK", None, version
                else:
                    yield event["type"], record_from_lease(raw), version
        except self._errors as exc:
            if getattr(exc, "status", None) == 410:
                raise WatchExpired(_describe(exc)) from None
            raise LeaseUnavailable(_describe(exc)) from None

    def _call(self, method: Callable[..., Any], *args: Any,
              missing_ok: bool = False) -> dict[str, Any] | None:
        """The JSON answer; None for a 404 when missing_ok; 409 is LeaseConflict."""
        try:
            response = method(*args, _preload_content=False, _request_timeout=self._timeout)
            body = json.loads(response.data)
            response.release_conn()
            return body
        except self._errors as exc:
            status = getattr(exc, "status", None)
            if status == 404 and missing_ok:
                return None
            if status == 409:
                raise LeaseConflict(_describe(exc)) from None
            raise LeaseUnavailable(_describe(exc)) from None


class KubePods:
    """Pod IPs by name through CoreV1Api, remembered for `ttl` seconds (one read per holder)."""

    def __init__(self, api_client: ApiClient, namespace: str, ttl: float = 30.0,
                 timeout: tuple[float, float] = (2.0, 5.0),
                 clock: Callable[[], float] = time.monotonic):
        from kubernetes import client

        self._api = client.CoreV1Api(api_client)
        self.namespace, self._ttl, self._timeout, self._clock = namespace, ttl, timeout, clock
        self._known: dict[str, tuple[float, str]] = {}
        self._errors = _errors()

    def ip_of(self, name: str) -> str:
        """The pod's status.podIP ('' if it cannot be read now)."""
        seen = self._known.get(name)
        if seen is not None and self._clock() - seen[0] < self._ttl:
            return seen[1]
        try:
            response: Any = self._api.read_namespaced_pod(name, self.namespace,
                                                     _preload_content=False,
                                                     _request_timeout=self._timeout)
            body = json.loads(response.data)
            response.release_conn()
            ip = str((body.get("status") or {}).get("podIP") or "")
        except self._errors as exc:
            log.warning("pod_ip_unknown", pod=name[:64], error=_describe(exc))
            return ""
        self._known = {name: (self._clock(), ip)}  # only the holder matters: keep one
        return ip
