"""In-cluster signals: Events on the sidecar's own Pod and annotations naming what it published.

In a Kubernetes pod with a service-account token, PodReporter tells the story that
`kubectl describe pod` shows:

- Events `ModelSynced` (Normal), `ModelRejected` and `SyncFailing` (Warning), at most one per
  reason per `min_interval` seconds; an Event repeating the previous one of its reason word for
  word is counted on it (count, lastTimestamp) instead of creating another;
- annotations `registry-sync.comet.com/versions` (JSON {registry model: version}),
  `.../snapshot` and `.../synced-at` after each publish, and `.../rejected` (JSON: snapshot,
  versions, reason) for the last snapshot serving refused.

Outside a cluster `PodReporter.in_cluster` returns None, quietly; use NullReporter instead.
Reporting is best effort: refusals, timeouts and outages of the API server are logged as
`kube_event_failed` / `kube_annotate_failed` and never raised, so the sync loop does not depend
on it. Every text sent goes through `logs.mask`, so registered secrets never reach the API.
The reporter is meant to be called from the one sync-loop thread.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from model_contract import logs

if TYPE_CHECKING:
    from kubernetes.client import ApiClient

log = logs.get(__name__)

COMPONENT = "registry-sync"
ANNOTATION_PREFIX = "registry-sync.comet.com/"
VERSIONS_ANNOTATION = ANNOTATION_PREFIX + "versions"
SNAPSHOT_ANNOTATION = ANNOTATION_PREFIX + "snapshot"
SYNCED_AT_ANNOTATION = ANNOTATION_PREFIX + "synced-at"
REJECTED_ANNOTATION = ANNOTATION_PREFIX + "rejected"
MAX_MESSAGE = 1024  # the API server refuses longer Event messages
MAX_REASON = 512  # of a rejection reason kept in the annotation
STRATEGIC_MERGE = "application/strategic-merge-patch+json"


class Reporter(Protocol):
    """What the sync loop tells the cluster; implementations never raise."""

    def model_synced(self, snapshot_id: str, versions: Mapping[str, str]) -> None:
        """A snapshot was published as `current`."""

    def model_rejected(self, snapshot_id: str, versions: Mapping[str, str], reason: str) -> None:
        """Serving refused a staged snapshot."""

    def model_rolled_back(self, snapshot_id: str, versions: Mapping[str, str], to: str,
                          reason: str) -> None:
        """The promotion guard sent `current` back from snapshot_id to `to`."""

    def sync_failing(self, reason: str, consecutive_failures: int) -> None:
        """A sync attempt failed again."""

    def close(self) -> None:
        """Release connections."""


class NullReporter:
    """The reporter outside a cluster: does nothing."""

    def model_synced(self, snapshot_id: str, versions: Mapping[str, str]) -> None:
        """Do nothing."""

    def model_rejected(self, snapshot_id: str, versions: Mapping[str, str], reason: str) -> None:
        """Do nothing."""

    def model_rolled_back(self, snapshot_id: str, versions: Mapping[str, str], to: str,
                          reason: str) -> None:
        """Do nothing."""

    def sync_failing(self, reason: str, consecutive_failures: int) -> None:
        """Do nothing."""

    def close(self) -> None:
        """Do nothing."""


@dataclass(frozen=True)
class PodRef:
    """The Pod that Events and annotations are recorded on (from the Downward API)."""

    name: str
    namespace: str
    uid: str = ""


@dataclass
class _Series:
    """The last Event created for a reason, so that a repeat is counted on it."""

    name: str
    message: str
    count: int


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _timestamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _describe(exc: BaseException) -> str:
    """A short, secret-free reason for a failed API call."""
    status = getattr(exc, "status", None)
    if isinstance(status, int):
        return f"HTTP {status} {getattr(exc, 'reason', '') or ''}".strip()
    return _clip(logs.mask(f"{type(exc).__name__}: {exc}"), 300)


def _versions_text(versions: Mapping[str, str]) -> str:
    return ", ".join(f"{name} {version}" for name, version in sorted(versions.items()))


def _token_hook(token_file: Path) -> Callable[[Any], None]:
    """Re-read the projected token before each request: the kubelet rotates it in place."""

    def refresh(configuration: Any) -> None:
        token = token_file.read_text(encoding="utf-8").strip()
        logs.redact(token)
        configuration.api_key["BearerToken"] = token

    return refresh


def api_client(api_url: str, token_file: Path, ca_file: Path | None = None) -> ApiClient:
    """A client of the API server at api_url, re-reading the token in token_file per request."""
    from kubernetes import client

    configuration = client.Configuration(
        host=api_url, ssl_ca_cert=str(ca_file) if ca_file else None, retries=0,
    )
    configuration.api_key["BearerToken"] = ""  # the hook reads it before every request
    configuration.api_key_prefix["BearerToken"] = "Bearer"
    configuration.refresh_api_key_hook = _token_hook(token_file)  # type: ignore[assignment]
    return client.ApiClient(configuration)


def _api_errors() -> tuple[type[BaseException], ...]:
    """What a call to the API server may raise: refusals, network failures, bad answers."""
    import urllib3
    from kubernetes.client.exceptions import OpenApiException

    return (OpenApiException, urllib3.exceptions.HTTPError, OSError, ValueError, KeyError,
            TypeError)


class PodReporter:
    """Records Events on a Pod and patches its annotations through the Kubernetes API."""

    def __init__(
        self,
        api_client: ApiClient,
        pod: PodRef,
        *,
        min_interval: float = 60.0,
        timeout: tuple[float, float] = (2.0, 5.0),
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = _utcnow,
    ):
        from kubernetes import client

        self._api_client = api_client
        self._core = client.CoreV1Api(api_client)
        self._event_type = client.CoreV1Event
        self._errors = _api_errors()
        self.pod = pod
        self._uid = pod.uid
        self._min_interval, self._timeout = min_interval, timeout
        self._clock, self._now = clock, now
        self._last_sent: dict[str, float] = {}
        self._series: dict[str, _Series] = {}

    @classmethod
    def in_cluster(
        cls,
        pod_name: str,
        namespace: str,
        *,
        service_host: str,
        service_port: str,
        token_file: Path,
        pod_uid: str = "",
        ca_file: Path | None = None,
        **options: Any,
    ) -> PodReporter | None:
        """A reporter when running in a pod with a service-account token, else None (silently).

        service_host/service_port are KUBERNETES_SERVICE_HOST/PORT, token_file
        KUBERNETES_TOKEN_FILE (ca_file: ca.crt beside it), pod_name/namespace/pod_uid the
        Downward API's metadata.name/namespace/uid; options go to the constructor.
        """
        ca_file = ca_file or token_file.with_name("ca.crt")
        if not service_host or not token_file.is_file():
            return None
        if not pod_name or not namespace:
            log.info("kube_reporting_off", reason="POD_NAME or POD_NAMESPACE is not set")
            return None
        host = f"[{service_host}]" if ":" in service_host else service_host
        try:
            return cls.connect(
                f"https://{host}:{service_port}", PodRef(pod_name, namespace, pod_uid),
                token_file=token_file, ca_file=ca_file if ca_file.is_file() else None, **options,
            )
        except _api_errors() as exc:
            log.warning("kube_reporting_off", reason=_describe(exc))
            return None

    @classmethod
    def connect(
        cls,
        api_url: str,
        pod: PodRef,
        *,
        token_file: Path,
        ca_file: Path | None = None,
        **options: Any,
    ) -> PodReporter:
        """A reporter for the API server at api_url, authenticated by the token in token_file."""
        return cls(api_client(api_url, token_file, ca_file), pod, **options)

    def model_synced(self, snapshot_id: str, versions: Mapping[str, str]) -> None:
        """Annotate the pod with the published versions and record a ModelSynced Event."""
        self._annotate({
            VERSIONS_ANNOTATION: json.dumps(dict(sorted(versions.items()))),
            SNAPSHOT_ANNOTATION: snapshot_id,
            SYNCED_AT_ANNOTATION: _timestamp(self._now()),
        })
        message = f"published snapshot {snapshot_id}: {_versions_text(versions)}"
        self._event("ModelSynced", "Normal", message)

    def model_rejected(self, snapshot_id: str, versions: Mapping[str, str], reason: str) -> None:
        """Annotate the pod with the rejected snapshot and record a ModelRejected Event."""
        reason = logs.mask(reason)
        self._annotate({REJECTED_ANNOTATION: json.dumps({
            "snapshot": snapshot_id, "versions": dict(sorted(versions.items())),
            "reason": _clip(reason, MAX_REASON),
        })})
        message = f"serving rejected snapshot {snapshot_id} ({_versions_text(versions)}): {reason}"
        self._event("ModelRejected", "Warning", message)

    def model_rolled_back(self, snapshot_id: str, versions: Mapping[str, str], to: str,
                          reason: str) -> None:
        """Record a ModelRolledBack Event."""
        message = (f"rolled back from snapshot {snapshot_id} ({_versions_text(versions)}) to "
                   f"{to}: {logs.mask(reason)}")
        self._event("ModelRolledBack", "Warning", message)

    def sync_failing(self, reason: str, consecutive_failures: int) -> None:
        """Record a SyncFailing Event."""
        message = f"{consecutive_failures} consecutive sync failures; last: {reason}"
        self._event("SyncFailing", "Warning", message)

    def close(self) -> None:
        """Release the API client's connections."""
        self._api_client.close()

    def _annotate(self, annotations: Mapping[str, str]) -> None:
        body = {"metadata": {"annotations": {k: logs.mask(v) for k, v in annotations.items()}}}
        try:
            self._discard(self._core.patch_namespaced_pod(
                self.pod.name, self.pod.namespace, body, _content_type=STRATEGIC_MERGE,
                _preload_content=False, _request_timeout=self._timeout,
            ))
        except self._errors as exc:
            log.warning("kube_annotate_failed", pod=self.pod.name, reason=_describe(exc))

    def _event(self, reason: str, kind: str, message: str) -> None:
        """Record an Event unless one of this reason was sent less than min_interval ago."""
        moment = self._clock()
        last = self._last_sent.get(reason)
        if last is not None and moment - last < self._min_interval:
            log.debug("kube_event_suppressed", event_reason=reason)
            return
        self._last_sent[reason] = moment
        message = _clip(logs.mask(message), MAX_MESSAGE)
        try:
            series = self._series.get(reason)
            if series is not None and series.message == message and self._count(series):
                return
            self._series[reason] = _Series(self._create(reason, kind, message), message, 1)
        except self._errors as exc:
            log.warning("kube_event_failed", event_reason=reason, reason=_describe(exc))

    def _count(self, series: _Series) -> bool:
        """Count a repeat on the existing Event; False if it is gone (Events expire)."""
        from kubernetes.client.exceptions import NotFoundException

        body = {"count": series.count + 1, "lastTimestamp": _timestamp(self._now())}
        try:
            self._discard(self._core.patch_namespaced_event(
                series.name, self.pod.namespace, body, _content_type=STRATEGIC_MERGE,
                _preload_content=False, _request_timeout=self._timeout,
            ))
        except NotFoundException:
            return False
        series.count += 1
        return True

    def _create(self, reason: str, kind: str, message: str) -> str:
        """Create an Event on the pod; return its name."""
        stamp = _timestamp(self._now())
        name = f"{self.pod.name}.{uuid.uuid4().hex[:16]}"
        event: Any = self._event_type.from_dict({  # never None for a dict
            "metadata": {"name": name, "namespace": self.pod.namespace},
            "involvedObject": {
                "apiVersion": "v1", "kind": "Pod", "name": self.pod.name,
                "namespace": self.pod.namespace, "uid": self._pod_uid(),
            },
            "reason": reason, "message": message, "type": kind,
            "count": 1, "firstTimestamp": stamp, "lastTimestamp": stamp,
            "source": {"component": COMPONENT},
            "reportingComponent": COMPONENT, "reportingInstance": self.pod.name,
        })
        self._discard(self._core.create_namespaced_event(
            self.pod.namespace, event, _preload_content=False, _request_timeout=self._timeout,
        ))
        return name

    def _pod_uid(self) -> str:
        """The pod's uid, which `kubectl describe` matches Events on; read once if not given."""
        if not self._uid:
            response: Any = self._core.read_namespaced_pod(  # raw: _preload_content=False
                self.pod.name, self.pod.namespace,
                _preload_content=False, _request_timeout=self._timeout,
            )
            body = response.data
            response.release_conn()
            self._uid = str(json.loads(body)["metadata"]["uid"])
        return self._uid

    @staticmethod
    def _discard(response: Any) -> None:
        """Read and release an undecoded response: nothing in it is needed."""
        response.data  # noqa: B018 - reading the body returns the connection to the pool
        response.release_conn()
