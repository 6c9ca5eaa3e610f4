"""Every untrusted-download case is refused with a clear error and `current` left untouched.

The hostile zips go through the zip fallback (a registry without download-instructions); the
per-asset path has its own cases in test_sidecar_assets.py.
"""

import json

import pytest

from devkit.processes import published
from devkit.registry import unique_name, zip_bytes
from tests.support.archives import unsafe_archives

from .test_sidecar import cli

CASES = unsafe_archives()


def good_root(registry, tmp_path, **extra):
    name = unique_name("clf")
    registry.register_files(name, "1.0.0", {"weights.bin": b"good"}, status="Production")
    root = tmp_path / "models"
    assert cli(registry, root, name, "once", **extra).returncode == 0
    return name, root


def status_of(registry, root, name) -> dict:
    return json.loads(cli(registry, root, name, "status", "--json").stdout)


@pytest.mark.parametrize("case", sorted(CASES))
def test_unsafe_archive_is_rejected_once_and_current_untouched(local_registry, tmp_path, case):
    data, extra, reason = CASES[case]
    local_registry.zip_only()
    name, root = good_root(local_registry, tmp_path, **extra)
    before = published(root)
    local_registry.register_zip(name, "1.1.0", data, status="Production")
    done = cli(local_registry, root, name, "once", **extra)
    assert done.returncode == 0  # a good snapshot is still there
    assert published(root) == before
    rejected = status_of(local_registry, root, name)["rejected"]
    assert rejected and rejected[-1]["versions"] == {name: "1.1.0"}
    assert reason in rejected[-1]["reason"]
    assert not list((root / ".staging").glob("*/*"))
    local_registry.reset_request_counts()
    assert cli(local_registry, root, name, "once", **extra).returncode == 0
    assert local_registry.downloads() == 0  # not retried


def test_sizes_that_disagree_with_file_size_are_rejected(local_registry, tmp_path):
    name, root = good_root(local_registry, tmp_path)
    before = published(root)
    local_registry.register_files(name, "1.1.0", {"weights.bin": b"x" * 1000},
                                  status="Production")
    local_registry.add_fault(path="registry-model/", file_size_delta=7)  # details, instructions
    assert cli(local_registry, root, name, "once").returncode == 0
    assert published(root) == before
    reason = status_of(local_registry, root, name)["rejected"][-1]["reason"]
    assert "registry's fileSize says 1007" in reason


def test_not_enough_disk_is_refused_before_downloading(local_registry, tmp_path):
    no_cap = {"MAX_MODEL_BYTES": str(10**18)}
    name, root = good_root(local_registry, tmp_path, **no_cap)
    before = published(root)
    local_registry.register_files(name, "1.1.0", {"weights.bin": b"x"}, status="Production")
    local_registry.add_fault(path="registry-model/", file_size_delta=10**15)
    local_registry.reset_request_counts()
    done = cli(local_registry, root, name, "once", **no_cap)
    assert done.returncode == 0 and published(root) == before
    assert local_registry.downloads() == 0
    error = status_of(local_registry, root, name)["lastError"]
    assert error["type"] == "InsufficientSpace" and "bytes free under MODEL_ROOT" in \
        error["message"]


def test_once_without_any_good_snapshot_exits_1_with_the_reason(local_registry, tmp_path):
    name = unique_name("clf")
    local_registry.register_zip(name, "1.0.0", zip_bytes({"../x": b"1"}), status="Production")
    done = cli(local_registry, tmp_path / "models", name, "once")
    assert done.returncode == 1
    assert "no good snapshot" in done.stderr and "climbs out" in done.stdout + done.stderr
