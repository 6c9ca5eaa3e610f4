"""Remote assets in S3 and GCS, installed over real HTTP: the local registry lists them, moto and
the GCS emulator (started here, behind fault proxies) hold their bytes, the sidecar's own clients
fetch them (installer level)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Iterator

import pytest

from devkit.registry import unique_name
from registry_sync.config import ArchiveLimits
from registry_sync.errors import (
    ArchiveTooLarge,
    RemoteAssetRefused,
    RemoteStoreError,
    SizeMismatch,
)
from registry_sync.registries.comet.client import CometClient
from registry_sync.registries.comet.registry import CometRegistry
from registry_sync.store import installer
from tests.support.object_stores import BUCKET, ObjectStores, remote_listing, running_object_stores

from .test_comet_client import client_for

LOCAL = b"local-asset-bytes" * 1000


@pytest.fixture(scope="module")
def object_stores(tmp_path_factory) -> Iterator[ObjectStores]:
    """moto_server and the GCS emulator, once for the module."""
    with running_object_stores(tmp_path_factory.mktemp("stores")) as stores:
        yield stores


@pytest.fixture
def stores(object_stores, monkeypatch) -> ObjectStores:
    """The stores with no fault, this process's clients pointed at them."""
    object_stores.clear_faults()
    for name, value in object_stores.env.items():
        monkeypatch.setenv(name, value)
    return object_stores


def _client(registry, stores: ObjectStores) -> CometClient:
    base = client_for(registry)
    settings = dataclasses.replace(base.settings, s3_endpoint=stores.s3_url,
                                   s3_region="us-east-1")
    return CometClient(settings, sleep=lambda _: None)


def _register(registry, listed: list[dict]) -> str:
    """A version: one asset in the registry, then the remote ones listed."""
    name = unique_name("remote")
    assets = [{"fileName": "local.bin", "fileSize": len(LOCAL), "member": 0}, *listed]
    registry.register_files(name, "1.0.0", {"local.bin": LOCAL}, assets=json.dumps(assets))
    return name


def _install(registry, stores, name, tmp_path, limits=None):
    client = _client(registry, stores)
    version = client.get_model(name).version("1.0.0")
    (tmp_path / "work").mkdir(exist_ok=True)
    received: list[int] = []
    entry = installer.install(CometRegistry(client), name, version, tmp_path / "work",
                              tmp_path / "model", limits or ArchiveLimits(), received.append,
                              lambda: False)
    return entry, sum(received)


def _s3(stores, key: str, data: bytes, **metadata) -> dict:
    version = stores.put_s3(key, data)
    return remote_listing(key, f"s3://{BUCKET}/{key}", len(data), version_id=version, **metadata)


def _gs(stores, key: str, data: bytes, **metadata) -> dict:
    generation = stores.put_gcs(key, data)
    return remote_listing(key, f"gs://{BUCKET}/{key}", len(data), version_id=generation,
                          **metadata)


def test_s3_and_gcs_assets_install_beside_registry_ones_at_the_version_logged(
        local_registry, stores, tmp_path):
    """Every file whole with its SHA-256; S3 gives the version the metadata names, not the
    object's newer one."""
    name = unique_name("m")
    weights, table = os.urandom(700_000), os.urandom(300_000)
    listed = [_s3(stores, f"{name}/weights.bin", weights), _gs(stores, f"{name}/table.bin", table)]
    stores.put_s3(f"{name}/weights.bin", b"overwritten later")  # a newer version of the key
    name = _register(local_registry, listed)
    entry, received = _install(local_registry, stores, name, tmp_path)
    expected = {"local.bin": LOCAL, listed[0]["fileName"]: weights,
                listed[1]["fileName"]: table}
    assert {f.path: (tmp_path / "model" / f.path).read_bytes() for f in entry.files} == expected
    assert {f.path: f.sha256 for f in entry.files} == {
        p: hashlib.sha256(b).hexdigest() for p, b in expected.items()}
    assert received == sum(len(b) for b in expected.values())
    assert not list((tmp_path / "work").iterdir())


def test_a_cut_object_resumes_from_the_bytes_on_disk(local_registry, stores, tmp_path):
    """Both stores cut an object mid-body once: each resumes with a range, bytes arrive once."""
    key = unique_name("cut")
    weights, table = os.urandom(600_000), os.urandom(500_000)
    name = _register(local_registry, [_s3(stores, f"{key}/w.bin", weights),
                                      _gs(stores, f"{key}/t.bin", table)])
    stores.s3.add(path=f"{key}/w.bin", cut_after=200_000)
    stores.gcs.add(path=f"{key}%2Ft.bin?alt=media", cut_after=100_000)
    entry, received = _install(local_registry, stores, name, tmp_path)
    assert {f.path: (tmp_path / "model" / f.path).read_bytes() for f in entry.files} == {
        "local.bin": LOCAL, f"{key}/w.bin": weights, f"{key}/t.bin": table}
    assert received == len(LOCAL) + len(weights) + len(table)  # resumed, not restarted
    assert [h for h in stores.s3.hits if h.startswith("GET") and "w.bin" in h] and \
        len([h for h in stores.gcs.hits if "t.bin" in h and "alt=media" in h]) == 2


def _denied(stores, key):
    stores.s3.add(path=key, method="HEAD", status=403, times=0,
                  body="<Error><Code>AccessDenied</Code><Message>denied</Message></Error>")
    return RemoteStoreError, r"denied access \(HTTP 403 AccessDenied\)"


@pytest.mark.parametrize("case", ["wrong size", "missing object", "denied", "sync error",
                                  "over the size cap"])
def test_a_remote_fault_refuses_the_version_naming_the_asset_before_any_byte(
        local_registry, stores, tmp_path, case):
    """Each fault is a clear error naming the asset (and its URI for the store's answers),
    raised before a byte of any remote object: nothing is installed."""
    key = f"{unique_name('fault')}/w.bin"
    data = os.urandom(50_000)
    listing, limits = _s3(stores, key, data), None
    error, phrase = {
        "wrong size": (SizeMismatch, "is 50000 bytes in s3://.* file_size says 50001"),
        "missing object": (RemoteStoreError, "no such object in the store"),
        "sync error": (RemoteAssetRefused, "failed to sync in Comet: bucket gone"),
        "over the size cap": (ArchiveTooLarge, "MAX_MODEL_BYTES=60000"),
    }.get(case, (None, None))
    if case == "wrong size":
        listing["metadata"] = json.dumps({"synced": True, "file_size": 50_001})
    elif case == "missing object":
        listing["link"] = f"s3://{BUCKET}/{key}.gone"
    elif case == "denied":
        error, phrase = _denied(stores, key)
    elif case == "sync error":
        listing["metadata"] = json.dumps({"synced": False, "error_message": "bucket gone"})
    else:
        listing["metadata"] = None  # the size comes from the store's answer, then the cap
        limits = ArchiveLimits(max_bytes=60_000)
    name = _register(local_registry, [listing])
    with pytest.raises(error, match=phrase) as refused:
        _install(local_registry, stores, name, tmp_path, limits)
    assert f"remote asset '{key}'" in str(refused.value) or case == "over the size cap"
    assert not [h for h in stores.s3.hits if h.startswith("GET")]
    assert not (tmp_path / "model").exists()


def test_a_gcs_object_denied_on_every_attempt_fails_the_pass_naming_it(local_registry, stores,
                                                                      tmp_path):
    """Denied credentials on GCS: RemoteStoreError naming the asset and its URI, not retried
    (a retry cannot fix a policy), nothing installed."""
    key = f"{unique_name('denied')}/t.bin"
    name = _register(local_registry, [_gs(stores, key, b"x" * 1000)])
    stores.gcs.add(path="t.bin", status=403, times=0,
                   body='{"error": {"code": 403, "message": "denied"}}')
    with pytest.raises(RemoteStoreError, match=f"remote asset '{key}'.*gs://{BUCKET}/{key}.*"
                                               "denied access"):
        _install(local_registry, stores, name, tmp_path)
    assert len([h for h in stores.gcs.hits if h.startswith("GET")]) == 1
    assert not (tmp_path / "model").exists()
