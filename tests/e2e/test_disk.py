"""Disk nearly full: a version that does not fit is refused before a byte is downloaded, with an
error that says how much is needed and free; once space is back, it goes through on its own.

MODEL_ROOT is a 96 MiB tmpfs here (a real size-limited filesystem, like a sized emptyDir); a
ballast file leaves 20 MiB free, and the version needs its zip plus its files plus a 16 MiB margin.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from devkit.processes import wait_until
from tests.support.pod_system import VERDICT_TIMEOUT

FREE_LEFT = 20 * 1024 * 1024
# incompressible; large enough that no snapshot pruned before the build can make it fit
PADDING = 12 * 1024 * 1024


def padded(source: Path, target: Path) -> Path:
    """A good pipeline folder with PADDING random bytes beside the model."""
    shutil.copytree(source, target)
    (target / "padding.bin").write_bytes(os.urandom(PADDING))
    return target


def fill(path: Path, leave: int) -> None:
    """Allocate a file so that only `leave` bytes stay free on its filesystem."""
    size = shutil.disk_usage(path.parent).free - leave
    with open(path, "wb") as ballast:
        os.posix_fallocate(ballast.fileno(), 0, size)


def test_a_version_too_big_for_the_nearly_full_volume_is_refused_before_download(pod, tmp_path):
    """InsufficientSpace, zero bytes downloaded, serving untouched; published once space frees."""
    if not pod.volume_limited:
        pytest.skip("this machine does not let the tests mount a tmpfs (needs root); the refusal "
                    "before download is also proved with a misreported fileSize in tests/"
                    "integration/test_sidecar_archives.py::test_not_enough_disk_is_refused_"
                    "before_downloading")
    before = pod.published()
    ballast = pod.root / ".e2e-ballast"
    fill(ballast, FREE_LEFT)
    try:
        with pod.load() as load:
            version = pod.promote(padded(pod.folders.pipeline, tmp_path / "big"))
            # the first pass may still be finishing a hand-over the previous test began
            error = pod.wait_error("InsufficientSpace", VERDICT_TIMEOUT)
            assert "bytes free under MODEL_ROOT" in error["message"]
            failures = pod.status()["consecutiveFailures"]
            wait_until(lambda: pod.status()["consecutiveFailures"] >= failures + 1, 15,
                       what="one more refusal, still without downloading")
            assert pod.registry.downloads() == 0
            assert pod.published() == before
            assert not list((pod.root / ".staging").glob("*/*"))
            assert "registry_sync_consecutive_failures" in pod.sidecar_metrics()
            ballast.unlink()
            pod.wait_served(version)
    finally:
        ballast.unlink(missing_ok=True)
    load.assert_all_ok()
