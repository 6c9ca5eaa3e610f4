"""The read and write endpoints of docs/comet-api.md §2-3, over HTTP against a real process."""

from __future__ import annotations

import requests

from devkit.registry import API, unique_name

FILES = {"model.pkl": b"\x80\x04weights", "out/config.json": b'{"a": 1}'}


def _register(registry, versions=("1.0.0",), **kwargs) -> str:
    name = unique_name()
    for version in versions:
        registry.register_files(name, version, FILES, **kwargs)
    return name


def test_is_alive_answers_a_recent_backend_version_without_a_key(local_registry):
    """isAlive/ver needs no key and names a backend new enough for the Model API."""
    response = requests.get(f"{local_registry.url}/clientlib/isAlive/ver", timeout=5)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    assert response.json()["version"] == "4.20.500"
    assert response.json()["server"] == "comet-registry-sync-local"


def test_json_answers_have_content_type_without_charset(local_registry):
    """The SDK refuses `application/json; charset=utf-8`, so every JSON answer is exact."""
    name = _register(local_registry)
    answers = [
        local_registry.get("registry-model", workspaceName=local_registry.workspace),
        local_registry.get("registry-model/details", workspaceName=local_registry.workspace,
                           modelName=name),
        local_registry.get("registry-model/details", workspaceName=local_registry.workspace,
                           modelName="missing"),
    ]
    assert [r.headers["Content-Type"] for r in answers] == ["application/json"] * 3


def test_missing_or_wrong_key_is_401_in_comet_error_body(local_registry):
    """Without the raw key in Authorization every API call is refused with 401."""
    url = f"{local_registry.api_url}/registry-model"
    params = {"workspaceName": local_registry.workspace}
    for headers in ({}, {"Authorization": "wrong"},
                    {"Authorization": f"Bearer {local_registry.api_key}"}):
        response = requests.get(url, params=params, headers=headers, timeout=5)
        assert response.status_code == 401
        assert set(response.json()) == {"msg", "code", "sdk_error_code", "data"}
        assert response.json()["code"] == 401


def test_unknown_model_and_version_are_404(local_registry):
    """An unknown model or version answers 404 in Comet's error body."""
    name = _register(local_registry)
    ws = local_registry.workspace
    missing_model = local_registry.get("registry-model/details", workspaceName=ws, modelName="no")
    missing_version = local_registry.get("registry-model/item/details", workspaceName=ws,
                                         modelName=name, version="9.9.9")
    missing_zip = local_registry.get("registry-model/item/download", workspaceName=ws,
                                     modelName=name, version="9.9.9")
    for response in (missing_model, missing_version, missing_zip):
        assert response.status_code == 404
        assert response.json()["code"] == 404 and response.json()["data"] is None


def test_any_workspace_exists_when_unrestricted(local_registry):
    """Without --workspace, an unknown workspace simply has no models."""
    response = local_registry.get("registry-model", workspaceName="nobody-here")
    assert response.status_code == 200 and response.json() == {"registryModels": []}


def test_model_listing_overview_shape(local_registry):
    """registry-model lists each model with its counts and latest version."""
    name = _register(local_registry, versions=("1.0.0", "1.1.0"))
    listed = local_registry.get("registry-model", workspaceName=local_registry.workspace).json()
    overview = next(m for m in listed["registryModels"] if m["modelName"] == name)
    assert set(overview) >= {"registryModelId", "modelName", "description", "numberOfVersions",
                             "isPublic", "userName", "createdAt", "lastUpdated", "latestVersion"}
    assert overview["numberOfVersions"] == 2
    assert overview["latestVersion"]["version"] == "1.1.0"
    count = local_registry.get("registry-model/count", workspaceName=local_registry.workspace)
    assert count.json()["registryModelCount"] == len(listed["registryModels"])


def test_the_sdk_details_shape_has_no_status_or_tags_where_item_details_keeps_them(
        local_registry):
    """--details-shape sdk: details as API.get_registry_model_details's docstring shows it."""
    name = _register(local_registry, tags=["canary"], status="Staging")
    local_registry.set_details_shape("sdk")
    try:
        (version,) = local_registry.details(name)["versions"]
        latest = local_registry.get("registry-model/latest_version",
                                    workspaceName=local_registry.workspace, modelName=name)
    finally:
        local_registry.set_details_shape("full")
    assert {"status", "tags"}.isdisjoint(version) and {"status", "tags"}.isdisjoint(
        latest.json()["versions"][0])
    assert {"registryModelItemId", "experimentModel", "version", "comment", "stages", "userName",
            "createdAt", "lastUpdated", "assets"} <= set(version)
    assert version["stages"] == ["canary"]
    item = local_registry.get("registry-model/item/details", workspaceName=local_registry.workspace,
                              modelName=name, version="1.0.0").json()
    assert (item["status"], item["tags"]) == ("Staging", ["canary"])
    refused = local_registry.session.put(f"{local_registry.url}/-/details-shape",
                                         json={"shape": "odd"}, headers=local_registry.headers)
    assert refused.status_code == 400 and "shape" in refused.json()["msg"]


def test_version_object_shape(local_registry):
    """A version carries §3's fields; stages mirror tags lowercased; links carry experimentKey."""
    name = _register(local_registry, tags=["Production", "canary"], comment="first",
                     experimentKey="a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6")
    details = local_registry.details(name)
    assert details["modelName"] == name and details["registryModelId"]
    (version,) = details["versions"]
    assert version["status"] == "None"
    assert version["tags"] == ["Production", "canary"]
    assert version["stages"] == ["production", "canary"]
    assert version["comment"] == "first" and version["restApiUrl"] is None
    assert version["experimentModel"]["experimentKey"] == "a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6"
    assets = {a["fileName"]: a for a in version["assets"]}
    assert {n: a["fileSize"] for n, a in assets.items()} == {n: len(c) for n, c in FILES.items()}
    asset = assets["model.pkl"]
    assert asset["metadata"] is None and asset["remote"] is False and asset["s3Link"] is None
    assert "experimentKey=a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6" in asset["link"]
    assert f"assetId={asset['assetId']}" in asset["link"]
    compact = local_registry.get("registry-model/compact-details",
                                 workspaceName=local_registry.workspace, modelName=name)
    assert compact.json() == {"registryModelId": details["registryModelId"]}


def test_versions_newest_first_ties_broken_by_semver(local_registry):
    """Versions are ordered by createdAt, newest first; equal times put the higher semver first."""
    name = unique_name()
    for version, created in [("1.0.0", 1000), ("1.10.0", 3000), ("1.2.0", 3000),
                             ("2.0.0", 2000)]:
        local_registry.register_files(name, version, FILES, createdAt=created)
    assert [v["version"] for v in local_registry.details(name)["versions"]] == [
        "1.10.0", "1.2.0", "2.0.0", "1.0.0"]


def test_items_filter_by_status_tag_and_prefix(local_registry):
    """registry-model/items filters by exact status, tag and whole-part version prefix."""
    name = _register(local_registry, versions=("2.1.0", "2.1.1", "2.10.0", "3.0.0"))
    local_registry.set_status(name, "2.1.0", "Production")
    local_registry.add_tag(name, "3.0.0", "Canary")

    def items(**params):
        answer = local_registry.get("registry-model/items",
                                    workspaceName=local_registry.workspace, modelName=name,
                                    **params)
        return [item["version"] for item in answer.json()["items"]]

    assert items() == ["3.0.0", "2.10.0", "2.1.1", "2.1.0"]
    assert items(status="Production") == ["2.1.0"]
    assert items(status="production") == []
    assert items(tag="canary") == ["3.0.0"]
    assert items(versionPrefix="2.1") == ["2.1.1", "2.1.0"]


def test_latest_version_with_and_without_stage(local_registry):
    """latest_version answers the model with only the newest (matching) version."""
    name = _register(local_registry, versions=("1.0.0", "1.1.0"))
    local_registry.add_tag(name, "1.0.0", "Production")
    ws = local_registry.workspace
    latest = local_registry.get("registry-model/latest_version", workspaceName=ws, modelName=name)
    staged = local_registry.get("registry-model/latest_version", workspaceName=ws, modelName=name,
                                stage="production")
    assert [v["version"] for v in latest.json()["versions"]] == ["1.1.0"]
    assert [v["version"] for v in staged.json()["versions"]] == ["1.0.0"]


def test_allowed_status_values(local_registry):
    """The four default statuses are allowed."""
    answer = local_registry.get("registry-model/allowed_status_values",
                                workspaceName=local_registry.workspace)
    assert answer.json() == {"allowedStatus": ["None", "Development", "Staging", "Production"]}


def test_download_selects_by_version_stage_or_latest(local_registry):
    """download takes a version, or a stage matched case-insensitively, or neither: the latest."""
    name = unique_name()
    first, second = {"a.txt": b"one"}, {"a.txt": b"two"}
    local_registry.register_files(name, "1.0.0", first, tags=["Production"])
    local_registry.register_files(name, "1.1.0", second)
    assert local_registry.download(name, version="1.0.0") == _zip_of(local_registry, name, "1.0.0")
    assert local_registry.download(name, stage="PRODUCTION") == local_registry.download(
        name, version="1.0.0")
    assert local_registry.download(name) == local_registry.download(name, version="1.1.0")
    response = local_registry.get("registry-model/item/download",
                                  workspaceName=local_registry.workspace, modelName=name,
                                  version="1.0.0", stage="production")
    assert response.status_code == 400
    response = local_registry.get("registry-model/item/download",
                                  workspaceName=local_registry.workspace, modelName=name,
                                  version="1.0.0")
    assert response.headers["Content-Type"] == "application/octet-stream"


def _zip_of(registry, name: str, version: str) -> bytes:
    return (registry.data_dir / "zips" / f"{registry.item_id(name, version)}.zip").read_bytes()


def test_download_instructions_and_get_asset_serve_each_file(local_registry):
    """download-instructions lists assets whose get-asset answers their exact bytes."""
    name = _register(local_registry)
    answer = local_registry.get("registry-model/item/download-instructions",
                                workspaceName=local_registry.workspace, modelName=name,
                                version="1.0.0").json()
    assert answer["s3DownloadEnabled"] is False
    for asset in answer["versions"][0]["assets"]:
        content = local_registry.get("experiment/asset/get-asset", assetId=asset["assetId"],
                                     experimentKey=asset["experimentKey"])
        assert content.headers["Content-Type"] == "application/octet-stream"
        assert content.content == FILES[asset["fileName"]]
    wrong_key = local_registry.get("experiment/asset/get-asset", assetId=asset["assetId"],
                                   experimentKey="0" * 32)
    assert wrong_key.status_code == 404


def test_status_tags_and_comment_writes(local_registry):
    """status promotes, stage adds a tag, stage/delete removes it, update replaces comment."""
    name = _register(local_registry)
    item = local_registry.item_id(name, "1.0.0")
    promoted = local_registry.post("write/registry-model/item/status",
                                   {"status": "Production", "modelItemId": item})
    assert promoted.status_code == 200 and promoted.json()["status"] == "Production"
    local_registry.get("write/registry-model/item/stage", modelItemId=item, stage="Canary")
    assert local_registry.details(name)["versions"][0]["stages"] == ["canary"]
    local_registry.get("write/registry-model/item/stage/delete", modelItemId=item, stage="canary")
    local_registry.post("write/registry-model/item/update",
                        {"registryModelItemId": item, "comment": "new", "stages": ["staging"]})
    version = local_registry.details(name)["versions"][0]
    assert (version["status"], version["tags"], version["comment"]) == (
        "Production", ["staging"], "new")


def test_unknown_status_is_refused(local_registry):
    """Only the allowed status values can be set."""
    name = _register(local_registry)
    answer = local_registry.post("write/registry-model/item/status",
                                 {"status": "Shipped", "modelItemId":
                                  local_registry.item_id(name, "1.0.0")})
    assert answer.status_code == 400
    assert local_registry.details(name)["versions"][0]["status"] == "None"


def test_delete_version_and_model(local_registry):
    """item/delete removes one version; registry-model/delete removes the model."""
    name = _register(local_registry, versions=("1.0.0", "1.1.0"))
    local_registry.get("write/registry-model/item/delete",
                       modelItemId=local_registry.item_id(name, "1.0.0"))
    assert [v["version"] for v in local_registry.details(name)["versions"]] == ["1.1.0"]
    local_registry.get("write/registry-model/delete", workspaceName=local_registry.workspace,
                       modelName=name)
    gone = local_registry.get("registry-model/details", workspaceName=local_registry.workspace,
                              modelName=name)
    assert gone.status_code == 404


def test_notes_round_trip(local_registry):
    """notes are set by POST and read by GET."""
    name = _register(local_registry)
    local_registry.post("write/registry-model/notes", {
        "workspaceName": local_registry.workspace, "registryModelName": name, "notes": "hi"})
    answer = local_registry.get("registry-model/notes", workspaceName=local_registry.workspace,
                                modelName=name)
    assert answer.json() == {"notes": "hi"}


def test_item_create_registers_a_version_without_files(local_registry):
    """The SDK's JSON register call creates the model and a version with no assets."""
    name = unique_name()
    answer = local_registry.post("write/registry-model/item/create", {
        "experimentKey": None, "experimentModelName": name, "registryModelName": name,
        "registryModelDescription": "desc", "version": "1.0.0", "versionComment": None,
        "tags": ["x"], "status": "Staging", "publicModel": None,
        "workspaceName": local_registry.workspace})
    assert answer.status_code == 200
    assert set(answer.json()) == {"registryModelId", "registryModelItemId"}
    details = local_registry.details(name)
    assert details["description"] == "desc"
    version = details["versions"][0]
    assert (version["status"], version["tags"], version["assets"]) == ("Staging", ["x"], [])
    duplicate = local_registry.post("write/registry-model/item/create", {
        "registryModelName": name, "version": "1.0.0",
        "workspaceName": local_registry.workspace})
    assert duplicate.status_code == 409


def test_unknown_endpoint_is_404_json(local_registry):
    """Paths we do not serve answer 404 in Comet's error body."""
    answer = local_registry.get("registry-model/nothing-here")
    assert answer.status_code == 404 and answer.json()["code"] == 404
    assert API in answer.url
