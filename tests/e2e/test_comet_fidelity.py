"""Comet's own download and limits through the whole pod: remote assets, per-asset refusals,
and issue 11's cases 4, 6 and 7 (deadlines that bound progress; Retry-After that cannot wedge).

Faults are aimed at the sidecar only (by its User-Agent); serving keeps answering throughout.
"""

from __future__ import annotations

import json
from itertools import pairwise

import pytest

from devkit.jsonlog import event_time
from tests.support.pod_system import SIDECAR_DEFAULTS

COMET_TIMEOUT = float(SIDECAR_DEFAULTS["COMET_TIMEOUT"])
DOWNLOAD_TIMEOUT = float(SIDECAR_DEFAULTS["COMET_DOWNLOAD_TIMEOUT"])
MAX_BACKOFF = float(SIDECAR_DEFAULTS["SYNC_MAX_BACKOFF"])


def _pipeline_files(pod) -> dict[str, bytes]:
    folder = pod.folders.pipeline
    return {p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _listed(files: dict[str, bytes]) -> list[dict]:
    """The assets the registry would list for these files, each served from the zip."""
    return [{"fileName": n, "fileSize": len(b), "member": i}
            for i, (n, b) in enumerate(files.items())]


def _promote_listing(pod, files: dict[str, bytes], listed: list[dict]) -> str:
    """Register the files as the next Production version, with the registry listing `listed`."""
    version = pod.next_version()
    pod.registry.register_files(pod.model, version, files, status="Production",
                                assets=json.dumps(listed))
    return version


def test_a_version_with_a_remote_asset_elsewhere_is_refused_and_the_previous_keeps_serving(pod):
    """An hdfs:// asset (only s3:// and gs:// can be fetched): refused naming it, nothing
    downloaded, the served version unchanged."""
    files = _pipeline_files(pod)
    listed = [*_listed(files), {"fileName": "extra/weights.bin", "fileSize": 1234,
                                "link": "hdfs://team-cluster/weights.bin"}]
    before = pod.published()
    with pod.load() as load:
        version = _promote_listing(pod, files, listed)
        rejection = pod.wait_refused_once(version)
        assert "asset 'extra/weights.bin'" in rejection["reason"]
        assert "has a hdfs:// link" in rejection["reason"]
        assert pod.published() == before
        good = pod.promote()
        pod.wait_served(good)
    load.assert_all_ok()
    pod.assert_only_published_answered(load)


@pytest.mark.parametrize("unsafe", ["../escape.bin", "/etc/cron.d/x"])
def test_an_asset_name_that_could_escape_is_refused_before_any_byte(pod, unsafe):
    """Per-asset names get the zip's name checks: refused once, nothing fetched."""
    files = _pipeline_files(pod)
    listed = _listed(files)
    listed[0]["fileName"] = unsafe
    before = pod.published()
    with pod.load() as load:
        version = _promote_listing(pod, files, listed)
        rejection = pod.wait_refused_once(version)
        assert f"asset {unsafe!r}" in rejection["reason"]
        assert pod.registry.downloads() == 0 and pod.published() == before
    load.assert_all_ok()


def test_a_healthy_download_without_content_length_outlasting_the_stall_timeout_installs(pod):
    """Issue 11 case 4: no Content-Length, steady bytes for longer than COMET_DOWNLOAD_TIMEOUT:
    the deadline follows the size the registry announced, so it installs, never 'too slow'."""
    largest = max(len(b) for b in _pipeline_files(pod).values())
    rate = max(1000, int(largest / (DOWNLOAD_TIMEOUT + 2)))  # the biggest asset takes ~4 s
    pod.restart_sidecar(COMET_MIN_DOWNLOAD_RATE=str(max(1, rate // 2)))
    pod.fault(path="get-asset", chunked=True, drip_bps=rate)
    retries = len(pod.sidecar_events("registry_retry"))
    with pod.load() as load:
        version = pod.promote()
        pod.wait_served(version, timeout=60)
    load.assert_all_ok()
    downloaded = [e for e in pod.sidecar_events("model_downloaded") if e["version"] == version]
    assert downloaded and downloaded[-1]["seconds"] > DOWNLOAD_TIMEOUT
    assert not [e for e in pod.sidecar_events("registry_retry")[retries:]
                if "too slow" in e["error"]]


def test_huge_retry_after_never_crashes_the_loop_and_waits_at_most_the_backoff_cap(pod):
    """Issue 11 case 6: 429 with Retry-After 99999999999 then 1e10: no traceback, no exit,
    the next request within SYNC_MAX_BACKOFF, and the version is served once it passes."""
    seen = len(pod.registry_events("fault_injected"))
    for hint in (99999999999, 1e10):
        pod.fault(path="registry-model/items", status=429, times=1, retry_after=hint)
    pod.fault(path="registry-model/items", times=1)  # no effect: marks the next request
    with pod.load() as load:
        version = pod.promote()
        pod.wait_served(version, timeout=30)
    load.assert_all_ok()
    times = [event_time(e) for e in pod.registry_events("fault_injected")[seen:]][:3]
    assert all(0 < b - a <= MAX_BACKOFF + 1.5 for a, b in pairwise(times))
    assert pod.sidecar.process.poll() is None
    assert "Traceback" not in pod.sidecar.log_path.read_text()
    failed = pod.sidecar_events("sync_failed")[-1]
    assert failed["error_type"] == "CometUnavailable" and "HTTP 429" in failed["error"]


def test_a_dripped_registry_answer_is_abandoned_at_the_call_deadline(pod):
    """Issue 11 case 7: details dripped a few bytes a second end at COMET_TIMEOUT per attempt;
    the loop goes on, and the version is served once the registry answers normally."""
    seen = len(pod.registry_events("fault_injected"))
    logged = {kind: len(pod.sidecar_events(kind)) for kind in ("registry_retry", "sync_failed")}
    pod.fault(path="registry-model/items", drip_bps=20, times=2)
    with pod.load() as load:
        version = pod.promote()
        pod.wait_served(version, timeout=40)
    load.assert_all_ok()
    dripped = [event_time(e) for e in pod.registry_events("fault_injected")[seen:]][:2]
    retries = [e for kind, count in logged.items() for e in pod.sidecar_events(kind)[count:]
               if "longer than COMET_TIMEOUT" in e.get("error", "")]  # this test's own
    assert retries, "the dripped answer was not abandoned at its deadline"
    first = min(event_time(e) for e in retries)
    assert COMET_TIMEOUT - 0.1 <= first - dripped[0] <= COMET_TIMEOUT + 2.0
