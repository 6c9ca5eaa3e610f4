"""The sidecar's per-asset download against the local registry over real HTTP (installer level)."""

from __future__ import annotations

import hashlib
import os
import time
import zipfile

import pytest

from devkit.processes import running_sidecar
from devkit.registry import unique_name
from registry_sync.config import ArchiveLimits
from registry_sync.errors import (
    BadResponse,
    CometUnavailable,
    PaymentRequired,
    RemoteAssetRefused,
    SizeMismatch,
)
from registry_sync.registries.comet import asset_download
from registry_sync.registries.comet.registry import CometRegistry
from registry_sync.store import installer

from .test_comet_client import client_for

SIZES = (300_000, 200_000, 400_000, 100_000)


def _files() -> dict[str, bytes]:
    return {f"part-{i}/w{i}.bin": os.urandom(size) for i, size in enumerate(SIZES)}


def _install(registry, name, tmp_path, client=None):
    client = client or client_for(registry)
    version = client.version_details(name, "1.0.0")
    received = []
    target = tmp_path / "model"
    (tmp_path / "work").mkdir(exist_ok=True)
    entry = installer.install(CometRegistry(client), name, version, tmp_path / "work", target,
                              ArchiveLimits(), received.append, lambda: False)
    return entry, target, sum(received)


def _registered(registry, files=None, compression=zipfile.ZIP_DEFLATED):
    name = unique_name("assets")
    registry.register_files(name, "1.0.0", files or _files(), compression=compression)
    return name


@pytest.mark.parametrize("compression", [zipfile.ZIP_DEFLATED, zipfile.ZIP_STORED],
                         ids=["deflated", "stored-sendfile"])
def test_assets_arrive_whole_and_a_cut_in_the_third_resumes_with_a_range(local_registry,
                                                                        tmp_path, compression):
    """A cut mid-asset resumes from the bytes on disk: each byte is received once."""
    files = _files()
    name = _registered(local_registry, files, compression)
    local_registry.add_fault(path="get-asset", skip=2, cut_after=SIZES[2] // 2, times=1)
    entry, target, received = _install(local_registry, name, tmp_path)
    assert {f.path: (target / f.path).read_bytes() for f in entry.files} == files
    assert {f.path: f.sha256 for f in entry.files} == {
        p: hashlib.sha256(b).hexdigest() for p, b in files.items()}
    assert received == sum(SIZES)  # resumed, not restarted
    assert local_registry.count("experiment/asset/get-asset") == len(SIZES) + 1
    assert local_registry.count("registry-model/item/download") == 0
    assert not list((tmp_path / "work").iterdir())  # parts moved, nothing left behind


def test_an_asset_cut_on_every_attempt_but_the_last_still_arrives_whole(local_registry,
                                                                         tmp_path):
    """Four cuts in a row, each resumed: no attempt keeps a receive buffer from the next."""
    files = _files()
    name = _registered(local_registry, files, zipfile.ZIP_STORED)
    local_registry.add_fault(path="get-asset", skip=2, cut_after=30_000, times=4)
    entry, target, received = _install(local_registry, name, tmp_path)  # 5 attempts
    assert {f.path: (target / f.path).read_bytes() for f in entry.files} == files
    assert {f.path: f.sha256 for f in entry.files} == {
        p: hashlib.sha256(b).hexdigest() for p, b in files.items()}
    assert received == sum(SIZES)
    assert local_registry.count("experiment/asset/get-asset") == len(SIZES) + 4


def test_presigned_links_are_used_when_the_registry_enables_them(local_registry, tmp_path):
    """s3DownloadEnabled: every asset comes from its presigned link, none through get-asset."""
    files = _files()
    name = _registered(local_registry, files)
    local_registry.set_presigned(True)
    try:
        entry, target, _ = _install(local_registry, name, tmp_path)
    finally:
        local_registry.set_presigned(False)
    assert {f.path: (target / f.path).read_bytes() for f in entry.files} == files
    counts = local_registry.request_counts()["by_path"]
    assert sum(n for p, n in counts.items() if p.startswith("/presigned/")) == len(SIZES)
    assert local_registry.count("experiment/asset/get-asset") == 0


def test_a_remote_asset_of_another_scheme_refuses_the_version_naming_it(local_registry,
                                                                         tmp_path):
    """Only s3:// and gs:// can be fetched: an hdfs:// asset is refused before any byte."""
    name = unique_name("remote")
    assets = ('[{"fileName": "w.bin", "fileSize": 3, "member": 0},'
              ' {"fileName": "big.bin", "fileSize": 9, "link": "hdfs://cluster/big.bin"}]')
    local_registry.register_files(name, "1.0.0", {"w.bin": b"abc"}, assets=assets)
    with pytest.raises(RemoteAssetRefused, match=r"asset 'big.bin' .* has a hdfs:// link"):
        _install(local_registry, name, tmp_path)
    assert local_registry.downloads() == 0
    assert not (tmp_path / "model").exists()


def test_an_asset_longer_than_its_file_size_is_a_size_mismatch(local_registry, tmp_path):
    """The registry announces 7 bytes fewer than it serves: refused, not retried."""
    name = _registered(local_registry)
    local_registry.add_fault(path="registry-model/", file_size_delta=-7)
    with pytest.raises(SizeMismatch, match="registry's fileSize says"):
        _install(local_registry, name, tmp_path)
    assert local_registry.count("experiment/asset/get-asset") == 1


def test_a_failed_asset_abandons_the_one_streaming_beside_it_and_asks_for_no_other(
        local_registry, tmp_path, monkeypatch):
    """Two assets streaming at once: the second's refusal ends the first's slow body at once."""
    monkeypatch.setattr(asset_download, "CONCURRENT_ASSETS", 2)
    name = _registered(local_registry)
    local_registry.add_fault(path="get-asset", drip_bps=20_000, times=1)  # 15 s for asset 0
    local_registry.add_fault(path="get-asset", status=404, times=1)  # asset 1: not retried
    started = time.monotonic()
    with pytest.raises(BadResponse, match="cannot find it"):
        _install(local_registry, name, tmp_path)
    assert time.monotonic() - started < 10
    assert local_registry.count("experiment/asset/get-asset") == 2


def test_without_instructions_the_zip_is_the_fallback(local_registry, tmp_path):
    """A registry answering 404 to download-instructions gets the zip endpoint instead."""
    files = _files()
    name = _registered(local_registry, files)
    local_registry.zip_only()
    entry, target, _ = _install(local_registry, name, tmp_path)
    assert {f.path: (target / f.path).read_bytes() for f in entry.files} == files
    assert local_registry.count("registry-model/item/download") == 1


def test_a_healthy_download_without_content_length_outlasting_the_stall_timeout_installs(
        local_registry, tmp_path):
    """Issue 11 case 4: the deadline follows the announced size, not COMET_DOWNLOAD_TIMEOUT."""
    files = {"w.bin": os.urandom(300_000)}
    name = _registered(local_registry, files)
    local_registry.add_fault(path="get-asset", chunked=True, drip_bps=150_000, times=1)
    client = client_for(local_registry, download_timeout=1.0)
    started = time.monotonic()
    _, target, _ = _install(local_registry, name, tmp_path, client=client)
    assert time.monotonic() - started > 1.0  # longer than the stall timeout alone
    assert (target / "w.bin").read_bytes() == files["w.bin"]


def test_a_zip_without_content_length_outlasting_the_stall_timeout_installs(local_registry,
                                                                          tmp_path):
    """The zip path's deadline is COMET_DOWNLOAD_TIMEOUT + the version's size / the minimum rate.

    The issue's 20 MiB at 2 MB/s with COMET_DOWNLOAD_TIMEOUT=3 (10 s of download, 3 s allowed),
    scaled down: 400 kB at 200 kB/s with 1 s (2 s of download, 1 s allowed before the fix).
    """
    files = {"w.bin": os.urandom(400_000)}
    name = _registered(local_registry, files, zipfile.ZIP_STORED)
    local_registry.zip_only()
    local_registry.add_fault(path="item/download", chunked=True, drip_bps=200_000, times=1)
    client = client_for(local_registry, download_timeout=1.0, attempts=1)
    started = time.monotonic()
    _, target, _ = _install(local_registry, name, tmp_path, client=client)
    assert time.monotonic() - started > 1.5  # it did outlast COMET_DOWNLOAD_TIMEOUT
    assert (target / "w.bin").read_bytes() == files["w.bin"]


def test_an_answer_dripped_slowly_is_abandoned_at_the_call_deadline(local_registry):
    """Issue 11 case 7: COMET_TIMEOUT bounds the whole answer, not only the gaps between bytes."""
    name = _registered(local_registry)
    local_registry.add_fault(path="registry-model/details", drip_bps=40)
    client = client_for(local_registry, timeout=1.0, attempts=1)
    started = time.monotonic()
    with pytest.raises(CometUnavailable, match="longer than COMET_TIMEOUT"):
        client.get_model(name)
    assert time.monotonic() - started < 10


def test_402_is_payment_required_and_never_retried(local_registry):
    """A plan limit is its own clear error."""
    local_registry.add_fault(path="registry-model/details", status=402)
    sleeps = []
    with pytest.raises(PaymentRequired, match="plan limit"):
        client_for(local_registry, sleeps).get_model("any")
    assert sleeps == []


@pytest.mark.parametrize("hint", [99999999999, 1e10])
def test_a_huge_retry_after_ends_the_call_with_a_finite_hint(local_registry, hint):
    """Issue 11 case 6 (client half): no sleep, no traceback, the hint carried capped."""
    local_registry.add_fault(path="registry-model/details", status=429, retry_after=hint)
    sleeps = []
    with pytest.raises(CometUnavailable) as caught:
        client_for(local_registry, sleeps, max_wait=2.0).get_model("any")
    assert sleeps == [] and caught.value.retry_after == 86400.0


def test_the_sidecar_counts_its_registry_requests_per_endpoint(local_registry, tmp_path):
    """registry_sync_registry_requests_total names each endpoint's template, never an id."""
    name = _registered(local_registry)
    local_registry.set_status(name, "1.0.0", "Production")
    with running_sidecar(local_registry, tmp_path / "models", name) as sidecar:
        sidecar.wait_for_versions({name: "1.0.0"})
        text = sidecar.metrics()
    counted = {line.split("{", 1)[1].split("}", 1)[0] for line in text.splitlines()
               if line.startswith("registry_sync_registry_requests_total{")}
    for endpoint in ("registry-model/items", "registry-model/item/download-instructions",
                     "experiment/asset/get-asset"):
        assert f'code="2xx",endpoint="{endpoint}"' in counted
    assert not any(local_registry.item_id(name, "1.0.0") in c for c in counted)
