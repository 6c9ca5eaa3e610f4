"""Hostile or broken archives promoted to Production: refused once, with a clear reason, while the
pod keeps serving the version it had; never retried; the next good version goes through.

(tests/integration/test_sidecar_archives.py proves the same refusals with the sidecar alone;
here serving runs under load beside it, and the refusal must not disturb it.) The hostile zips
go through the zip fallback (a registry without download-instructions); the per-asset path's
own refusals are in test_comet_fidelity.py.
"""

from __future__ import annotations

import pytest

from tests.support.archives import malformed_archives, unsafe_archives

# what the zip module cannot read safely, through the zip fallback (no download-instructions)
MALFORMED = malformed_archives()
# ratio 1000:1, and fits the pod's small volume
CASES = {**unsafe_archives(bomb_bytes=5_000_000), **MALFORMED}


@pytest.mark.parametrize("case", sorted(CASES))
def test_an_unsafe_archive_is_refused_once_and_serving_never_notices(pod, case):
    """'..', absolute paths, links, bombs, corrupt or truncated zips, duplicate or over-long
    names, file/folder clashes, encryption, deflate64, broken streams: refused, never retried."""
    data, settings, reason = CASES[case]
    if settings:
        pod.restart_sidecar(**settings)
    pod.registry.zip_only()
    before = pod.published()
    with pod.load() as load:
        version = pod.promote_zip(data)
        rejection = pod.wait_refused_once(version)
        assert reason in rejection["reason"]
        assert pod.published() == before
        assert not list((pod.root / ".staging").glob("*/*"))
        assert pod.sidecar_events("model_rejected")[-1]["by"] == "archive"
    load.assert_all_ok()
    assert load.versions() == set(before.values())  # the version it had, throughout
    pod.serving.wait_for_version(before[pod.model])
    assert 'registry_sync_rejections_total{reason="archive"}' in pod.sidecar_metrics()


def test_sizes_that_disagree_with_the_registrys_file_size_are_refused(pod):
    """The registry's fileSize says 7 bytes more than the zip holds: refused, not retried."""
    before = pod.published()
    with pod.load() as load:
        pod.fault(path="registry-model/", file_size_delta=7)  # details and instructions
        version = pod.promote()
        rejection = pod.wait_refused_once(version)
        assert "the registry's fileSize says" in rejection["reason"]
        assert pod.published() == before
        pod.registry.clear_faults()
        good = pod.promote()
        pod.wait_served(good)
    load.assert_all_ok()
