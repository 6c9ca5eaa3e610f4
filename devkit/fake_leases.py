"""coordination.k8s.io/v1 Leases as the stand-in API server keeps them, watches included.

Faithful where leader election and the decision watch depend on it:

- one cluster-wide, increasing `resourceVersion` (etcd's revision, a decimal string) stamped on
  every write; a PUT whose `metadata.resourceVersion` is not the stored one is refused with 409
  Conflict, and one without any is refused with 422 (the Lease strategy's
  AllowUnconditionalUpdate is false); a PUT of a name that does not exist creates it
  (AllowCreateOnUpdate is true); a POST of an existing name is 409 AlreadyExists;
- annotations over 256 KiB in total (keys and values) are refused with 422, as the API
  server's ValidateAnnotations does;
- `creationTimestamp` as RFC 3339 seconds (`2026-11-29T01:55:19Z`), `acquireTime`/`renewTime`
  as MicroTime (`2026-11-29T01:55:19.123456Z`), normalised from whatever offset the client sent;
- `uid` fixed at creation; `metadata.name` in the body must match the path (400 otherwise);
- watches (`?watch=true`, `fieldSelector=metadata.name=...`, `resourceVersion`,
  `allowWatchBookmarks`, `timeoutSeconds`): one JSON event per line; no resourceVersion (or "0")
  first replays the current objects as ADDED; a resourceVersion older than the kept history is
  an ERROR event carrying a 410 Expired Status, sent in a 200 stream as the watch cache does;
  BOOKMARK events carry only kind, apiVersion and metadata.resourceVersion; the stream ends
  after timeoutSeconds or when a test calls `close_watches()`.

Not modelled: authentication and RBAC (any token is accepted), admission, managedFields and
server-side apply, PATCH of Leases, DELETE (tests delete with `remove`), label selectors, list
pagination (`limit`/`continue`), `resourceVersionMatch`, `sendInitialEvents`, protobuf, the
Lease `preferredHolder`/`strategy` fields' semantics, and the minute-long bookmark cadence of a
real server (here `bookmark_interval`, one second by default).
"""

from __future__ import annotations

import itertools
import json
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

API_VERSION = "coordination.k8s.io/v1"
MICRO_TIME_FIELDS = ("acquireTime", "renewTime")


class ApiError(Exception):
    """A refusal the handler turns into a Status body."""

    def __init__(self, code: int, reason: str, message: str):
        super().__init__(message)
        self.code, self.reason, self.message = code, reason, message

    def status(self) -> dict[str, Any]:
        """The metav1.Status the API server answers with."""
        return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": self.message, "reason": self.reason, "code": self.code}


def micro_time(value: str) -> str:
    """A client's timestamp as the API server stores a MicroTime."""
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except (TypeError, ValueError):
        raise ApiError(400, "BadRequest", f"invalid MicroTime {value!r}") from None
    if moment.tzinfo is None:
        raise ApiError(400, "BadRequest", f"MicroTime {value!r} has no offset")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


MAX_ANNOTATIONS_BYTES = 256 * 1024  # apimachinery's TotalAnnotationSizeLimitB


def _check_annotations(metadata: dict[str, Any]) -> None:
    """422 when the annotations together exceed what the API server stores."""
    annotations = metadata.get("annotations") or {}
    if not isinstance(annotations, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in annotations.items()):
        raise ApiError(400, "BadRequest", "metadata.annotations must map strings to strings")
    total = sum(len(k) + len(v) for k, v in annotations.items())
    if total > MAX_ANNOTATIONS_BYTES:
        raise ApiError(422, "Invalid", f"metadata.annotations: Too long: must have at most "
                                       f"{MAX_ANNOTATIONS_BYTES} bytes")


def _rfc3339_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class LeaseStore:
    """The Leases of all namespaces, the revision counter and the recent event history."""

    revision: int = 1000
    history_size: int = 1000
    bookmark_interval: float = 1.0
    objects: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    history: list[tuple[int, str, dict[str, Any]]] = field(default_factory=list)
    oldest: int = 0  # watches from a resourceVersion below this are 410 Gone
    _changed: threading.Condition = field(default_factory=threading.Condition)
    _closings: int = 0

    def get(self, namespace: str, name: str) -> dict[str, Any]:
        """The stored Lease, or 404."""
        with self._changed:
            return json.loads(json.dumps(self._find(namespace, name)))

    def list(self, namespace: str, name: str | None) -> dict[str, Any]:
        """A LeaseList at the current revision."""
        with self._changed:
            items = [json.loads(json.dumps(o)) for (ns, n), o in sorted(self.objects.items())
                     if ns == namespace and name in (None, n)]
            return {"kind": "LeaseList", "apiVersion": API_VERSION,
                    "metadata": {"resourceVersion": str(self.revision)}, "items": items}

    def create(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        """Store a new Lease; 409 AlreadyExists if the name is taken."""
        metadata = body.get("metadata") or {}
        name = metadata.get("name")
        if not name:
            raise ApiError(422, "Invalid", "Lease.coordination.k8s.io is invalid: metadata.name: "
                                           "Required value")
        _check_annotations(metadata)
        with self._changed:
            if (namespace, name) in self.objects:
                raise ApiError(409, "AlreadyExists",
                               f'leases.coordination.k8s.io "{name}" already exists')
            stored = self._normalise(body, namespace)
            stored["metadata"].update(uid=str(uuid.uuid4()), creationTimestamp=_rfc3339_now())
            return self._write(namespace, name, stored, "ADDED")

    def update(self, namespace: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
        """Replace a Lease; 409 Conflict when the body's resourceVersion is stale."""
        metadata = body.get("metadata") or {}
        if metadata.get("name") != name:
            raise ApiError(400, "BadRequest", "the name of the object does not match the URL")
        _check_annotations(metadata)
        with self._changed:
            if (namespace, name) not in self.objects:  # AllowCreateOnUpdate
                stored = self._normalise(body, namespace)
                stored["metadata"].pop("resourceVersion", None)
                stored["metadata"].update(uid=str(uuid.uuid4()), creationTimestamp=_rfc3339_now())
                return self._write(namespace, name, stored, "ADDED")
            current = self._find(namespace, name)
            sent = metadata.get("resourceVersion")
            if not sent:  # the Lease strategy refuses unconditional updates
                raise ApiError(422, "Invalid", f'Lease.coordination.k8s.io "{name}" is invalid: '
                                               "metadata.resourceVersion: Invalid value: 0x0: "
                                               "must be specified for an update")
            if sent != current["metadata"]["resourceVersion"]:
                raise ApiError(409, "Conflict",
                               f'Operation cannot be fulfilled on leases.coordination.k8s.io '
                               f'"{name}": the object has been modified; please apply your '
                               f'changes to the latest version and try again')
            stored = self._normalise(body, namespace)
            for kept in ("uid", "creationTimestamp"):
                stored["metadata"][kept] = current["metadata"][kept]
            return self._write(namespace, name, stored, "MODIFIED")

    def remove(self, namespace: str, name: str) -> None:
        """Delete a Lease (a DELETED event), as `kubectl delete lease` would."""
        with self._changed:
            gone = self._find(namespace, name)
            del self.objects[(namespace, name)]
            self.revision += 1
            gone = dict(gone, metadata=dict(gone["metadata"], resourceVersion=str(self.revision)))
            self._record("DELETED", gone)

    def compact(self) -> None:
        """Forget the history, as etcd compaction does: older resourceVersions become 410."""
        with self._changed:
            self.history.clear()
            self.oldest = self.revision

    def close_watches(self) -> None:
        """End every open watch stream, as an API server restart or a load balancer would."""
        with self._changed:
            self._closings += 1
            self._changed.notify_all()

    def watch(self, namespace: str, name: str | None, since: str, bookmarks: bool,
              timeout: float, send: Callable[[dict[str, Any]], None]) -> None:
        """Send events to `send` until the timeout or close_watches(); raises on a bad version."""
        deadline = time.monotonic() + timeout
        with self._changed:
            closings = self._closings
            if since in ("", "0"):
                position = self.revision
                backlog = [("ADDED", o) for (ns, n), o in sorted(self.objects.items())
                           if ns == namespace and name in (None, n)]
            else:
                if not since.isdigit():
                    raise ApiError(400, "BadRequest", f"invalid resourceVersion {since!r}")
                position = int(since)
                if position < self.oldest:
                    backlog = [("ERROR", ApiError(
                        410, "Expired", f"too old resource version: {position} "
                                        f"({self.oldest})").status())]
                    position = -1
                else:
                    backlog = [(kind, o) for rv, kind, o in self.history if rv > position
                               and o["metadata"]["namespace"] == namespace
                               and name in (None, o["metadata"]["name"])]
                    position = max(position, self.revision)
        for kind, obj in backlog:
            send({"type": kind, "object": obj})
        if position < 0:
            return
        self._follow(namespace, name, position, bookmarks, deadline, closings, send)

    def _follow(self, namespace: str, name: str | None, position: int, bookmarks: bool,
                deadline: float, closings: int, send: Callable[[dict[str, Any]], None]) -> None:
        next_bookmark = time.monotonic() + self.bookmark_interval
        while True:
            with self._changed:
                now = time.monotonic()
                wait = min(deadline, next_bookmark if bookmarks else deadline) - now
                if wait > 0 and self.revision == position and self._closings == closings:
                    self._changed.wait(wait)
                if self._closings != closings or time.monotonic() >= deadline:
                    return
                fresh = [(rv, kind, o) for rv, kind, o in self.history if rv > position]
                position = self.revision
            for _rv, kind, obj in fresh:
                if obj["metadata"]["namespace"] == namespace and name in (
                        None, obj["metadata"]["name"]):
                    send({"type": kind, "object": obj})
            if bookmarks and time.monotonic() >= next_bookmark:
                send({"type": "BOOKMARK", "object": {
                    "kind": "Lease", "apiVersion": API_VERSION,
                    "metadata": {"resourceVersion": str(position)}}})
                next_bookmark = time.monotonic() + self.bookmark_interval

    def holders(self) -> list[str]:
        """Every holderIdentity the history has seen, in order, repeats collapsed."""
        with self._changed:
            seen = [o.get("spec", {}).get("holderIdentity") for _rv, _k, o in self.history]
        return [h for h, _ in itertools.groupby(seen) if h]

    def _find(self, namespace: str, name: str) -> dict[str, Any]:
        found = self.objects.get((namespace, name))
        if found is None:
            raise ApiError(404, "NotFound", f'leases.coordination.k8s.io "{name}" not found')
        return found

    @staticmethod
    def _normalise(body: dict[str, Any], namespace: str) -> dict[str, Any]:
        stored = json.loads(json.dumps(body))
        stored.update(apiVersion=API_VERSION, kind="Lease")
        stored["metadata"] = {k: v for k, v in stored["metadata"].items() if v is not None}
        stored["metadata"]["namespace"] = namespace
        spec = {k: v for k, v in (stored.get("spec") or {}).items() if v is not None}
        for key in MICRO_TIME_FIELDS:
            if key in spec:
                spec[key] = micro_time(spec[key])
        stored["spec"] = spec
        return stored

    def _write(self, namespace: str, name: str, stored: dict[str, Any],
               kind: str) -> dict[str, Any]:
        self.revision += 1
        stored["metadata"]["resourceVersion"] = str(self.revision)
        self.objects[(namespace, name)] = stored
        self._record(kind, stored)
        return json.loads(json.dumps(stored))

    def _record(self, kind: str, obj: dict[str, Any]) -> None:
        self.history.append((self.revision, kind, json.loads(json.dumps(obj))))
        if len(self.history) > self.history_size:
            dropped = self.history.pop(0)
            self.oldest = dropped[0]
        self._changed.notify_all()
