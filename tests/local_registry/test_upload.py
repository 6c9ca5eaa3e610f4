"""Our upload endpoint: the body is stored and served byte for byte, hostile or not."""

from __future__ import annotations

import io
import re
import stat
import zipfile

import pytest
import requests

from devkit.registry import unique_name, zip_bytes


def _hostile_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("../escape.txt", b"out of the folder")
        archive.writestr("/etc/absolute.txt", b"absolute")
        link = zipfile.ZipInfo("link")
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        archive.writestr(link, "/etc/passwd")
        archive.writestr("bomb.bin", b"\0" * 5_000_000)
    return buffer.getvalue()


def test_upload_answers_ids_and_lists_zip_entries_as_assets(local_registry):
    """An upload answers the ids; each file entry becomes an asset of its uncompressed size."""
    name = unique_name()
    files = {"model.pkl": b"x" * 1000, "out/nested/a.txt": b"hello"}
    answer = local_registry.register_files(name, "1.0.0", files, status="Production",
                                           tags=["a", "b"], comment="c")
    assert set(answer) == {"registryModelId", "registryModelItemId"}
    version = local_registry.details(name)["versions"][0]
    assert version["registryModelItemId"] == answer["registryModelItemId"]
    assert (version["status"], version["tags"], version["comment"]) == ("Production",
                                                                      ["a", "b"], "c")
    assert {a["fileName"]: a["fileSize"] for a in version["assets"]} == {
        "model.pkl": 1000, "out/nested/a.txt": 5}


def test_hostile_zip_is_stored_and_served_unchanged(local_registry):
    """'..', absolute paths, symlinks and bombs are kept as uploaded, for the sidecar to refuse."""
    name, body = unique_name(), _hostile_zip()
    local_registry.register_zip(name, "1.0.0", body)
    assert local_registry.download(name, version="1.0.0") == body
    names = {a["fileName"] for a in local_registry.details(name)["versions"][0]["assets"]}
    assert names == {"../escape.txt", "/etc/absolute.txt", "link", "bomb.bin"}


def test_a_body_that_is_not_a_zip_is_kept_with_no_assets(local_registry):
    """Bytes that are not a zip are still stored; they list no assets and download as sent."""
    name, body = unique_name(), b"this is not a zip at all" * 100
    local_registry.register_zip(name, "1.0.0", body)
    assert local_registry.details(name)["versions"][0]["assets"] == []
    assert local_registry.download(name, version="1.0.0") == body


def test_explicit_assets_override_the_zip_entries(local_registry):
    """An `assets` parameter lists the assets instead of the zip's entries."""
    name = unique_name()
    local_registry.register_zip(name, "1.0.0", b"garbage",
                                assets='[{"fileName": "model.pkl", "fileSize": 7}]')
    (asset,) = local_registry.details(name)["versions"][0]["assets"]
    assert (asset["fileName"], asset["fileSize"]) == ("model.pkl", 7)


def test_experiment_key_is_generated_when_missing(local_registry):
    """Without experimentKey, a 32-hex one is made up and used in the asset links."""
    name = unique_name()
    local_registry.register_files(name, "1.0.0", {"a": b"1"})
    version = local_registry.details(name)["versions"][0]
    key = version["experimentModel"]["experimentKey"]
    assert re.fullmatch(r"[0-9a-f]{32}", key)
    assert f"experimentKey={key}" in version["assets"][0]["link"]


def test_duplicate_version_is_409_and_keeps_the_first(local_registry):
    """Uploading an existing version again is refused; the first zip stays."""
    name, first = unique_name(), zip_bytes({"a": b"first"})
    local_registry.register_zip(name, "1.0.0", first)
    with pytest.raises(requests.HTTPError) as refused:
        local_registry.register_files(name, "1.0.0", {"a": b"second"})
    assert refused.value.response.status_code == 409
    assert refused.value.response.json()["code"] == 409
    assert local_registry.download(name, version="1.0.0") == first


@pytest.mark.parametrize("params", [
    {"version": "1.0"}, {"version": "1.0.0", "status": "Shipped"},
    {"version": "1.0.0", "experimentKey": "not/hex"},
])
def test_bad_upload_parameters_are_400(local_registry, params):
    """A version that is not semver, an unknown status or a bad key is refused."""
    query = {"workspaceName": local_registry.workspace, "registryModelName": unique_name(),
             **params}
    answer = requests.post(f"{local_registry.api_url}/write/registry-model/item/upload",
                           params=query, data=b"zip", headers=local_registry.headers, timeout=5)
    assert answer.status_code == 400 and answer.json()["code"] == 400


def test_register_folder_streams_a_zip_of_the_folder(local_registry, tmp_path):
    """register_folder zips a folder without a wrapping folder."""
    (tmp_path / "m" / "sub").mkdir(parents=True)
    (tmp_path / "m" / "model.pkl").write_bytes(b"pkl")
    (tmp_path / "m" / "sub" / "x.json").write_bytes(b"{}")
    name = unique_name()
    local_registry.register_folder(name, "1.0.0", tmp_path / "m")
    archive = zipfile.ZipFile(io.BytesIO(local_registry.download(name, version="1.0.0")))
    assert sorted(archive.namelist()) == ["model.pkl", "sub/x.json"]
