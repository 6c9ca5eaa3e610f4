"""A model whose files live in S3 and GCS, served by the whole pod: the local registry lists them
as Comet does (remote: true, an s3:// or gs:// link, metadata), the sidecar fetches them with its
own clients from moto and the GCS emulator (started here, behind fault proxies), serving loads
them. Faults on the stores never disturb what is served."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.support.object_stores import (
    BUCKET,
    ObjectStores,
    remote_listing,
    running_object_stores,
)


@pytest.fixture(scope="module")
def object_stores(tmp_path_factory) -> Iterator[ObjectStores]:
    """moto_server and the GCS emulator, once for the module."""
    with running_object_stores(tmp_path_factory.mktemp("stores")) as stores:
        yield stores


def _promote_remote(pod, stores: ObjectStores) -> str:
    """The pipeline's files as the next Production version, alternately in S3 and in GCS."""
    version = pod.next_version()
    folder = pod.folders.pipeline
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    listed = []
    for index, path in enumerate(files):
        name, data = path.relative_to(folder).as_posix(), path.read_bytes()
        key = f"{pod.model}/{version}/{name}"
        if index % 2:
            object_version, scheme = stores.put_gcs(key, data), "gs"
        else:
            object_version, scheme = stores.put_s3(key, data), "s3"
        listed.append(remote_listing(name, f"{scheme}://{BUCKET}/{key}", len(data),
                                     version_id=object_version))
    pod.registry.register_files(pod.model, version, {}, status="Production",
                                assets=json.dumps(listed))
    return version


def test_a_model_in_s3_and_gcs_is_served_and_a_denied_store_keeps_the_previous_serving(
        pod, object_stores):
    """Every file remote (cut once on the way): served under load. Then a version whose store
    denies the sidecar: the error names the asset, the previous version answers throughout, and
    once access is granted again the new version is served."""
    object_stores.clear_faults()
    pod.restart_sidecar(**object_stores.env)
    object_stores.s3.add(path=f"/{BUCKET}/{pod.model}/", cut_after=1000)
    with pod.load() as load:
        version = _promote_remote(pod, object_stores)
        pod.wait_served(version)
        object_stores.gcs.add(path=pod.model, status=403, times=0,
                              body='{"error": {"code": 403, "message": "denied"}}')
        denied = _promote_remote(pod, object_stores)
        error = pod.wait_error("RemoteStoreError", timeout=30)
        assert "denied access" in error["message"] and f"gs://{BUCKET}/" in error["message"]
        assert pod.published()[pod.model] == version
        object_stores.clear_faults()
        pod.wait_served(denied)
    load.assert_all_ok()
    pod.assert_only_published_answered(load)
    retried = [e["error"] for e in pod.sidecar_events("registry_retry")]
    assert any("remote asset" in e and "S3 transfer failed" in e for e in retried), retried
