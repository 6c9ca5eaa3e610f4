"""The registry misbehaves; serving never notices, the sidecar says what happened, waits no longer
than its timeouts allow, and catches up by itself once the registry behaves again.

Every scenario runs under a bounded prediction load and ends with a newly promoted version served
by every worker. Faults are aimed at the sidecar only (by its User-Agent).
"""

from __future__ import annotations

import signal
import time
from itertools import pairwise

import pytest
import requests

from devkit.jsonlog import event_time
from devkit.processes import wait_until
from registry_sync.registries.comet.client import MIN_DOWNLOAD_RATE
from registry_sync.registries.values import semver_key
from tests.support.pod_system import (
    ROTATED_API_KEY,
    SIDECAR_DEFAULTS,
    WRONG_API_KEY,
    largest_asset,
)

COMET_TIMEOUT = float(SIDECAR_DEFAULTS["COMET_TIMEOUT"])
DOWNLOAD_TIMEOUT = float(SIDECAR_DEFAULTS["COMET_DOWNLOAD_TIMEOUT"])
MAX_BACKOFF = float(SIDECAR_DEFAULTS["SYNC_MAX_BACKOFF"])
CLOCK_SLACK = 0.05  # log timestamps have millisecond resolution, on one machine's clock


def faulted_requests(pod, since: int) -> list[float]:
    """When each faulted (or marked) request reached the registry, after the first `since`."""
    return [event_time(e) for e in pod.registry_events("fault_injected")[since:]]


@pytest.mark.parametrize("header", ["retry_after", "retry_after_custom"])
def test_429_is_honoured_with_retry_after_or_only_retry_after_custom(pod, header):
    """429 with a wait longer than the sidecar's own backoff: the next request comes no sooner.

    (A wait beyond SYNC_MAX_BACKOFF is capped there: test_comet_fidelity.py, issue 11 case 6.)
    """
    wait = MAX_BACKOFF - 0.5  # longer than the backoff after one failure (at most 1 s here)
    seen = len(pod.registry_events("fault_injected"))
    pod.fault(path="registry-model/items", status=429, times=1, **{header: wait})
    pod.fault(path="registry-model/items", times=1)  # no effect: marks the next request
    with pod.load() as load:
        version = pod.promote()
        pod.wait_served(version)
    load.assert_all_ok()
    refused, next_request = faulted_requests(pod, seen)[:2]
    assert wait - CLOCK_SLACK <= next_request - refused <= wait + MAX_BACKOFF + 1.0
    # a wait under the client's max wait is retried within the pass, a longer one by the loop
    said = pod.sidecar_events("registry_retry") + pod.sidecar_events("sync_failed")
    assert any("HTTP 429" in e["error"] for e in said)


def test_connection_refused_keeps_current_and_the_sidecar_catches_up(pod):
    """Registry down: /readyz stays 200, the error says ConnectionError, success time frozen."""
    with pod.load() as load:
        pod.registry.stop()
        error = pod.wait_error("CometUnavailable")
        assert "ConnectionError" in error["message"]
        last_success = metric(pod.sidecar_metrics(),
                              "registry_sync_last_success_timestamp_seconds")
        assert last_success < error["at"]  # a failed pass never counts as a success
        assert requests.get(f"{pod.sidecar.url}/readyz", timeout=5).status_code == 200
        assert pod.sidecar.process.poll() is None
        pod.registry.restart()
        version = pod.promote()
        pod.wait_served(version)
    load.assert_all_ok()
    pod.assert_only_published_answered(load)
    assert pod.status()["consecutiveFailures"] == 0


@pytest.mark.parametrize("path, timeout", [("registry-model/items", COMET_TIMEOUT),
                                           ("experiment/asset/get-asset", DOWNLOAD_TIMEOUT)])
def test_a_stalled_response_is_abandoned_at_the_timeout_and_retried(pod, path, timeout):
    """No byte for longer than the timeout: given up after COMET_(DOWNLOAD_)TIMEOUT, retried."""
    stall = timeout + 3.0
    seen = len(pod.registry_events("fault_injected"))
    pod.fault(path=path, stall=stall, times=1)
    retries_before = len(pod.sidecar_events("registry_retry"))
    with pod.load() as load:
        version = pod.promote()
        pod.wait_served(version)
    load.assert_all_ok()
    stalled = faulted_requests(pod, seen)[0]
    retry = pod.sidecar_events("registry_retry")[retries_before]
    assert "Timeout" in retry["error"]
    assert timeout - CLOCK_SLACK <= event_time(retry) - stalled < stall - 1.0


def test_a_slow_drip_download_is_abandoned_at_its_deadline_and_retried(pod):
    """A download trickling bytes never hits the read timeout; its overall deadline ends it."""
    drip = 16_000  # bytes per second, far below the sidecar's minimum rate
    seen = len(pod.registry_events("fault_injected"))
    retries_before = len(pod.sidecar_events("registry_retry"))
    index, size = largest_asset(pod.folders.pipeline)
    pod.fault(path="get-asset", drip_bps=drip, skip=index, times=1)
    with pod.load() as load:
        version = pod.promote()
        pod.wait_served(version)
    load.assert_all_ok()
    deadline = DOWNLOAD_TIMEOUT + size / MIN_DOWNLOAD_RATE
    retry = pod.sidecar_events("registry_retry")[retries_before]
    assert "too slow" in retry["error"]
    waited = event_time(retry) - faulted_requests(pod, seen)[0]
    assert deadline - CLOCK_SLACK <= waited <= deadline + 1.0 < size / drip


def test_a_download_cut_short_is_retried_and_never_installed_partially(pod):
    """The connection closes mid-asset: the sidecar notices, resumes, installs every file whole."""
    retries_before = len(pod.sidecar_events("registry_retry"))
    index, size = largest_asset(pod.folders.pipeline)
    pod.fault(path="get-asset", cut_after=size // 2, skip=index, times=1)
    with pod.load() as load:
        version = pod.promote()
        pod.wait_served(version)
    load.assert_all_ok()
    assert "cut short" in pod.sidecar_events("registry_retry")[retries_before]["error"]
    pod.assert_current_complete()


def test_a_wrong_api_key_says_so_and_the_fixed_file_is_picked_up_without_restart(pod):
    """401: Unauthorized naming the setting to fix, never retried in a pass; no restart needed."""
    pid = pod.sidecar.process.pid
    before = pod.published()
    with pod.load() as load:
        pod.api_key_file.write_text(WRONG_API_KEY)
        version = pod.promote()
        message = pod.wait_error("Unauthorized")["message"]
        assert "COMET_API_KEY_FILE" in message and "refused the API key" in message
        assert pod.published() == before
        pod.registry.reset_request_counts()
        failures = pod.status()["consecutiveFailures"]
        wait_until(lambda: pod.status()["consecutiveFailures"] >= failures + 1, 15,
                   what="one more failed pass")
        asked = pod.registry.request_counts()["total"]  # whichever read a pass starts with
        assert asked <= pod.status()["consecutiveFailures"] - failures + 1  # one per pass
        pod.api_key_file.write_text(pod.registry.api_key)
        pod.wait_served(version)
    load.assert_all_ok()
    assert pod.sidecar.process.pid == pid


def test_a_revoked_key_fails_clearly_until_the_rotated_secret_is_read(pod):
    """The registry revokes the key; writing the new key into the mounted file is enough."""
    pid = pod.sidecar.process.pid
    with pod.load() as load:
        pod.registry.api_key = ROTATED_API_KEY  # the old key is refused from now on
        pod.registry.restart()
        version = pod.promote()
        assert "refused the API key" in pod.wait_error("Unauthorized")["message"]
        pod.api_key_file.write_text(ROTATED_API_KEY)  # the Secret is rotated
        pod.wait_served(version)
    load.assert_all_ok()
    assert pod.sidecar.process.pid == pid


def test_a_demoted_version_is_left_for_the_next_production_one_and_none_keeps_serving(pod):
    """Demote the newest Production: follow the remaining one; delete it too: keep serving."""
    with pod.load() as load:
        older = pod.promote()
        pod.wait_served(older)
        newer = pod.promote(pod.folders.alternative)
        pod.demote_all_but(older, newer)
        pod.wait_served(newer)
        downloads = pod.registry.downloads()
        pod.registry.set_status(pod.model, newer, "Staging")
        pod.wait_served(older)
        assert pod.registry.downloads() == downloads  # hard-linked
        item = pod.registry.item_id(pod.model, older)
        pod.registry.get("write/registry-model/item/delete", modelItemId=item).raise_for_status()
        wait_until(lambda: "no version with status 'Production'" in (pod.status()["waiting"]
                                                                     or ""), 15,
                   what="the sidecar waiting for a Production version")
        assert pod.published() == {pod.model: older}
        pod.serving.wait_for_version(older)
        assert pod.sidecar_events("sync_finished")[-1]["outcome"] == "waiting"
        version = pod.promote()
        pod.wait_served(version)
    load.assert_all_ok()
    pod.assert_only_published_answered(load)


def test_two_production_versions_at_once_serve_the_newest_without_flapping(pod):
    """Newest by createdAt wins even over a higher semver; equal createdAt: higher semver."""
    pod.demote_all_but()
    now = int(time.time() * 1000)
    with pod.load() as load:
        recent = pod.promote(createdAt=str(now))
        older_but_higher = pod.promote(pod.folders.alternative, createdAt=str(now - 60_000))
        assert semver_key(older_but_higher) > semver_key(recent)
        pod.wait_served(recent)
        tie = now + 1  # still in the past for every later registration
        # Both promotions land between two polls: low alone would rightly be served for a while.
        pod.sidecar.process.send_signal(signal.SIGSTOP)
        try:
            low = pod.promote(pod.folders.alternative, createdAt=str(tie))
            high = pod.promote(createdAt=str(tie))
        finally:
            pod.sidecar.process.send_signal(signal.SIGCONT)
        pod.wait_served(high)
        published = len(pod.sidecar_events("model_published"))
        polls = len(pod.sidecar_events("sync_finished"))
        wait_until(lambda: len(pod.sidecar_events("sync_finished")) >= polls + 4, 10,
                   what="four more polls")
        assert len(pod.sidecar_events("model_published")) == published  # no flapping
        assert pod.status()["desired"] == {pod.model: high}
    load.assert_all_ok()
    assert low not in load.versions() and older_but_higher not in load.versions()


def metric(text: str, name: str) -> float:
    """The value of an unlabelled metric in Prometheus text."""
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    raise AssertionError(f"{name} not in metrics")


OUTAGE = 60.0


@pytest.mark.slow
def test_a_minute_of_500s_never_disturbs_serving_and_the_sidecar_backs_off(pod):
    """Every registry call answers 500 for a minute: zero failed predictions, /readyz 200, the
    sidecar backs off (capped, jittered, few requests) and catches up once it is over."""
    cap = 5.0
    pod.restart_sidecar(SYNC_MAX_BACKOFF=str(cap))
    pid, before = pod.sidecar.process.pid, pod.published()
    failed_before = len(pod.sidecar_events("sync_failed"))
    with pod.load(seconds=OUTAGE + 30, pause=0.05) as load:
        pod.fault(path="/api/rest/v2/", status=500)
        pod.registry.reset_request_counts()
        started = time.monotonic()
        version = pod.promote()  # promoted during the outage
        frozen = None
        while time.monotonic() - started < OUTAGE:
            time.sleep(5)
            status = pod.status()
            assert "HTTP 500" in status["lastError"]["message"]
            assert requests.get(f"{pod.sidecar.url}/readyz", timeout=5).status_code == 200
            assert pod.published() == before and pod.sidecar.process.poll() is None
            last_success = metric(pod.sidecar_metrics(),
                                  "registry_sync_last_success_timestamp_seconds")
            assert frozen in (None, last_success), "last success advanced during the outage"
            frozen = last_success
        details = pod.registry.request_counts()["total"]  # the poll's reads (and the upload)
        failures = pod.status()["consecutiveFailures"]
        pod.registry.clear_faults()
        pod.wait_served(version, timeout=cap + 10)
    load.assert_all_ok(at_least=500)
    assert {a.version for a in load.answers if a.ended < started + OUTAGE} == set(before.values())
    assert pod.sidecar.process.pid == pid
    times = [event_time(e) for e in pod.sidecar_events("sync_failed")[failed_before:]]
    gaps = [b - a for a, b in pairwise(times[4:])]  # once the backoff is at its cap
    assert failures >= 8 and len(gaps) >= 4
    assert all(cap / 2 - CLOCK_SLACK <= gap <= cap + 6.0 for gap in gaps), gaps
    assert max(gaps) - min(gaps) > 0.1, f"no jitter: {gaps}"
    # 3 attempts a pass; passes at least cap/2 + the 1.5 s of in-pass waits apart (vs. 120 polls)
    assert details <= 3 * (OUTAGE / (cap / 2 + 1.5) + 4), f"{details} requests in the outage"
