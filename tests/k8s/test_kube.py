"""registry_sync.hooks.kube against a stand-in Kubernetes API server over real HTTP on 127.0.0.1."""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from devkit.fake_kube_api import FakeApi, Server
from devkit.processes import free_port
from model_contract import logs
from registry_sync.hooks import kube

API_KEY = "comet-api-key-0123456789abcdef"
TOKEN = "service-account-token-1"
POD = kube.PodRef("comet-registry-sync-7d9f-abcde", "ml-serving", "pod-uid-1")
NOW = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)
VERSIONS = {"diamonds-classifier": "1.1.0", "diamonds-scaler": "1.0.0"}


class Clock:
    """A monotonic clock a test advances by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        """Let time pass."""
        self.now += seconds


@pytest.fixture(autouse=True)
def _loopback(no_proxy):
    """Every request here goes to a stand-in on 127.0.0.1, never through a proxy."""


@pytest.fixture
def token_file(tmp_path: Path) -> Path:
    """The projected service-account token."""
    path = tmp_path / "token"
    path.write_text(TOKEN + "\n")
    return path


@pytest.fixture
def clock() -> Clock:
    """The reporter's monotonic clock."""
    return Clock()


@pytest.fixture
def reporter(api, token_file, clock):
    """A reporter for POD talking to the stand-in server."""
    made = kube.PodReporter.connect(api.url, POD, token_file=token_file, clock=clock,
                                    now=lambda: NOW, min_interval=60.0)
    yield made
    made.close()


@pytest.fixture
def kube_logs(caplog):
    """The events registry_sync.hooks.kube logs, as (event, fields)."""
    caplog.set_level(logging.DEBUG)

    def events() -> list[tuple[str, dict]]:
        return [(r.getMessage(), getattr(r, "fields", {})) for r in caplog.records
                if r.name == "registry_sync.hooks.kube"]

    return events


def test_model_synced_annotates_the_pod_and_records_a_normal_event(api, reporter):
    """A strategic-merge patch of three annotations, then an Event on the pod; the token on both."""
    reporter.model_synced("20250301T120000Z-a1b2", VERSIONS)

    (patch,) = api.sent("PATCH", "pods")
    assert patch.path == f"/api/v1/namespaces/{POD.namespace}/pods/{POD.name}"
    assert patch.headers["content-type"] == "application/strategic-merge-patch+json"
    assert patch.headers["authorization"] == f"Bearer {TOKEN}"
    annotations = patch.body["metadata"]["annotations"]
    assert json.loads(annotations["registry-sync.comet.com/versions"]) == VERSIONS
    assert annotations["registry-sync.comet.com/snapshot"] == "20250301T120000Z-a1b2"
    assert annotations["registry-sync.comet.com/synced-at"] == "2025-03-01T12:00:00Z"
    assert api.annotations == annotations

    (post,) = api.sent("POST", "events")
    assert post.path == f"/api/v1/namespaces/{POD.namespace}/events"
    assert post.headers["authorization"] == f"Bearer {TOKEN}"
    event = post.body
    assert event["involvedObject"] == {"apiVersion": "v1", "kind": "Pod", "name": POD.name,
                                       "namespace": POD.namespace, "uid": POD.uid}
    assert event["metadata"]["namespace"] == POD.namespace
    assert event["metadata"]["name"].startswith(POD.name + ".")
    assert (event["reason"], event["type"], event["count"]) == ("ModelSynced", "Normal", 1)
    assert event["message"] == ("published snapshot 20250301T120000Z-a1b2: "
                                "diamonds-classifier 1.1.0, diamonds-scaler 1.0.0")
    assert event["source"] == {"component": "registry-sync"}
    assert event["reportingComponent"] == "registry-sync"
    assert event["reportingInstance"] == POD.name
    assert datetime.fromisoformat(event["firstTimestamp"]) == NOW


def test_model_rejected_records_the_snapshot_and_reason_as_a_warning(api, reporter):
    """The rejected annotation names snapshot, versions and reason; the Event is a Warning."""
    reporter.model_rejected("snap-2", VERSIONS, "golden predictions differ: 3 of 20")

    (patch,) = api.sent("PATCH", "pods")
    rejected = json.loads(patch.body["metadata"]["annotations"]["registry-sync.comet.com/rejected"])
    assert rejected == {"snapshot": "snap-2", "versions": VERSIONS,
                        "reason": "golden predictions differ: 3 of 20"}
    (post,) = api.sent("POST", "events")
    assert (post.body["reason"], post.body["type"]) == ("ModelRejected", "Warning")
    assert post.body["message"] == ("serving rejected snapshot snap-2 (diamonds-classifier 1.1.0,"
                                    " diamonds-scaler 1.0.0): golden predictions differ: 3 of 20")


def test_sync_failing_records_a_warning_and_touches_no_annotation(api, reporter):
    """Only an Event: the annotations keep describing what is served."""
    reporter.sync_failing("CometUnavailable: 503 after 5 attempts", 4)

    assert api.sent("PATCH") == []
    (post,) = api.sent("POST", "events")
    assert (post.body["reason"], post.body["type"]) == ("SyncFailing", "Warning")
    assert post.body["message"] == (
        "4 consecutive sync failures; last: CometUnavailable: 503 after 5 attempts")


def test_events_are_rate_limited_per_reason(api, reporter, clock, kube_logs):
    """At most one Event per reason per min_interval; other reasons are not held back."""
    reporter.sync_failing("timeout", 1)
    clock.advance(30)
    reporter.sync_failing("timeout", 2)
    reporter.model_rejected("snap-3", VERSIONS, "load failed")
    assert [r.body["reason"] for r in api.sent("POST", "events")] == ["SyncFailing",
                                                                       "ModelRejected"]
    assert ("kube_event_suppressed", {"event_reason": "SyncFailing"}) in kube_logs()

    clock.advance(31)
    reporter.sync_failing("timeout", 3)
    assert [r.body["reason"] for r in api.sent("POST", "events")] == ["SyncFailing",
                                                                       "ModelRejected",
                                                                       "SyncFailing"]


def test_a_repeated_event_is_counted_on_the_previous_one(api, reporter, clock):
    """Same reason and message after the interval: PATCH count/lastTimestamp, no new Event."""
    reporter.model_synced("snap-1", VERSIONS)
    clock.advance(61)
    reporter.model_synced("snap-1", VERSIONS)

    (post,) = api.sent("POST", "events")
    (patch,) = api.sent("PATCH", "events")
    name = post.body["metadata"]["name"]
    assert patch.path == f"/api/v1/namespaces/{POD.namespace}/events/{name}"
    assert patch.body == {"count": 2, "lastTimestamp": "2025-03-01T12:00:00Z"}
    assert patch.headers["content-type"] == "application/strategic-merge-patch+json"

    clock.advance(61)
    reporter.model_synced("snap-2", VERSIONS)
    assert len(api.sent("POST", "events")) == 2, "a different message is a new Event"


def test_an_expired_event_is_created_again(api, reporter, clock):
    """If the Event to count on is gone (Events expire after an hour), a new one is created."""
    reporter.sync_failing("timeout", 1)
    api.events.clear()
    clock.advance(61)
    reporter.sync_failing("timeout", 1)

    assert len(api.sent("PATCH", "events")) == 1
    assert len(api.sent("POST", "events")) == 2


def test_registered_secrets_never_reach_the_api(api, reporter):
    """Reasons and messages pass through logs.mask: the API key is sent as *** only."""
    logs.redact(API_KEY)
    reason = f"401 Unauthorized for key {API_KEY}"
    reporter.model_rejected("snap-9", VERSIONS, reason)
    reporter.sync_failing(reason, 7)

    assert api.requests
    for request in api.requests:
        assert API_KEY.encode() not in request.raw
        assert API_KEY not in request.path
    assert all(logs.MASK.encode() in r.raw for r in api.requests)


def test_the_token_is_re_read_so_rotation_needs_no_restart(api, reporter, token_file, clock):
    """The kubelet rewrites the projected token; the next request carries the new one."""
    reporter.sync_failing("timeout", 1)
    token_file.write_text("service-account-token-2")
    clock.advance(61)
    reporter.sync_failing("other", 2)

    assert [r.headers["authorization"] for r in api.requests] == [
        f"Bearer {TOKEN}", "Bearer service-account-token-2"]


def test_without_a_uid_the_pod_is_read_once(api, token_file):
    """The uid (which `kubectl describe` matches Events on) is fetched when not injected."""
    reporter = kube.PodReporter.connect(api.url, kube.PodRef(POD.name, POD.namespace),
                                        token_file=token_file, min_interval=0)
    reporter.sync_failing("a", 1)
    reporter.sync_failing("b", 2)
    reporter.close()

    assert [r.method for r in api.requests] == ["GET", "POST", "POST"]
    assert api.requests[0].path == f"/api/v1/namespaces/{POD.namespace}/pods/{POD.name}"
    assert {r.body["involvedObject"]["uid"] for r in api.sent("POST")} == {api.pod_uid}


def test_messages_are_clipped_to_what_the_api_accepts(api, reporter):
    """Event messages over 1024 characters are refused by the API server: clip them."""
    reporter.sync_failing("x" * 5000, 1)
    (post,) = api.sent("POST", "events")
    assert len(post.body["message"]) == 1024 and post.body["message"].endswith("...")


def test_server_errors_are_logged_never_raised(api, reporter, kube_logs):
    """A 500 from the API server: the call returns, a kube_*_failed event names the status."""
    api.fail_with = 500
    reporter.model_synced("snap-1", VERSIONS)
    reporter.sync_failing("timeout", 1)

    failures = [(event, fields) for event, fields in kube_logs() if event.endswith("_failed")]
    assert failures == [
        ("kube_annotate_failed", {"pod": POD.name, "reason": "HTTP 500 Internal Server Error"}),
        ("kube_event_failed", {"event_reason": "ModelSynced",
                               "reason": "HTTP 500 Internal Server Error"}),
        ("kube_event_failed", {"event_reason": "SyncFailing",
                               "reason": "HTTP 500 Internal Server Error"}),
    ]


def test_a_forbidden_answer_is_logged_never_raised(api, reporter, kube_logs):
    """RBAC missing (403) is reported the same way."""
    api.fail_with = 403
    reporter.model_rejected("snap-1", VERSIONS, "bad")
    assert [f["reason"] for e, f in kube_logs() if e.endswith("_failed")] == [
        "HTTP 403 Forbidden", "HTTP 403 Forbidden"]


def test_an_unreachable_api_server_is_logged_quickly_never_raised(token_file, kube_logs):
    """Connection refused: no retries, no exception, one failure event per call."""
    reporter = kube.PodReporter.connect(f"http://127.0.0.1:{free_port()}", POD,
                                        token_file=token_file)
    started = time.monotonic()
    reporter.model_synced("snap-1", VERSIONS)
    reporter.sync_failing("timeout", 1)
    reporter.close()

    assert time.monotonic() - started < 2
    failures = [(e, f) for e, f in kube_logs() if e.endswith("_failed")]
    assert [e for e, _ in failures] == ["kube_annotate_failed", "kube_event_failed",
                                        "kube_event_failed"]
    assert all("MaxRetryError" in f["reason"] for _, f in failures)


def test_a_hanging_api_server_times_out_never_raises(api, token_file, kube_logs):
    """A server that accepts but never answers costs at most the read timeout per call."""
    api.hang = threading.Event()
    reporter = kube.PodReporter.connect(api.url, POD, token_file=token_file,
                                        timeout=(0.5, 0.3))
    started = time.monotonic()
    reporter.sync_failing("timeout", 1)
    reporter.close()

    assert time.monotonic() - started < 2
    ((event, fields),) = [(e, f) for e, f in kube_logs() if e.endswith("_failed")]
    assert event == "kube_event_failed" and "timed out" in fields["reason"].lower()


def test_an_unreadable_token_is_logged_never_raised(api, token_file, kube_logs):
    """A token file gone missing fails the call, not the caller."""
    reporter = kube.PodReporter.connect(api.url, POD, token_file=token_file)
    token_file.unlink()
    reporter.sync_failing("timeout", 1)
    reporter.close()

    assert api.requests == []
    ((event, fields),) = [(e, f) for e, f in kube_logs() if e.endswith("_failed")]
    assert event == "kube_event_failed" and "FileNotFoundError" in fields["reason"]


def test_outside_a_cluster_there_is_no_reporter_and_no_log(tmp_path, kube_logs):
    """No KUBERNETES_SERVICE_HOST, or no token mounted: None, silently."""
    token = tmp_path / "token"
    assert kube.PodReporter.in_cluster(POD.name, POD.namespace, service_host="",
                                       service_port="443", token_file=token) is None
    assert kube.PodReporter.in_cluster(POD.name, POD.namespace, service_host="10.0.0.1",
                                       service_port="443", token_file=token) is None
    token.write_text(TOKEN)
    assert kube.PodReporter.in_cluster(POD.name, POD.namespace, service_host="",
                                       service_port="443", token_file=token) is None
    assert kube_logs() == []


def test_in_a_cluster_without_the_downward_api_reporting_is_off_and_says_why(tmp_path,
                                                                              kube_logs):
    """A token but no POD_NAME/POD_NAMESPACE: None, with one info event."""
    token = tmp_path / "token"
    token.write_text(TOKEN)
    assert kube.PodReporter.in_cluster("", "", service_host="10.0.0.1", service_port="443",
                                       token_file=token) is None
    assert kube_logs() == [("kube_reporting_off",
                            {"reason": "POD_NAME or POD_NAMESPACE is not set"})]


def test_the_null_reporter_does_nothing(kube_logs):
    """The stand-in outside a cluster accepts every call."""
    reporter = kube.NullReporter()
    reporter.model_synced("s", VERSIONS)
    reporter.model_rejected("s", VERSIONS, "r")
    reporter.sync_failing("r", 1)
    reporter.close()
    assert kube_logs() == []


def test_in_cluster_talks_https_to_the_service_host_with_the_cluster_ca(tmp_path, token_file):
    """KUBERNETES_SERVICE_HOST/PORT, the mounted ca.crt and token: the real in-cluster path."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a self-signed certificate")
    cert, key = tmp_path / "ca.crt", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1", "-addext",
         "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=30,
    )
    with Server(FakeApi(), cert=(str(cert), str(key))) as api:
        reporter = kube.PodReporter.in_cluster(
            POD.name, POD.namespace, service_host="127.0.0.1",
            service_port=api.url.rsplit(":", 1)[1], pod_uid=POD.uid, token_file=token_file,
            ca_file=cert)
        assert reporter is not None
        reporter.model_synced("snap-1", VERSIONS)
        reporter.close()

    assert api.url.startswith("https://")
    assert [(r.method, r.headers["authorization"]) for r in api.requests] == [
        ("PATCH", f"Bearer {TOKEN}"), ("POST", f"Bearer {TOKEN}")]
