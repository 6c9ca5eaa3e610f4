"""History, metadata, status configuration with review, model update, webhooks, ranges and
presigned links of the local registry, over HTTP against a real process."""

from __future__ import annotations

import json
import zipfile

import pytest
import requests

from devkit.registry import API, MEMBER_API_KEY, unique_name

WEIGHTS = bytes(range(256)) * 40  # 10240 bytes


def _version(registry, status="None", compression=zipfile.ZIP_DEFLATED):
    name = unique_name("m")
    registry.register_files(name, "1.0.0", {"w.bin": WEIGHTS}, status=status,
                            compression=compression)
    return name, registry.item_id(name, "1.0.0")


def _post(registry, path, payload, key=None):
    return requests.post(f"{registry.api_url}/{path}", json=payload, timeout=10,
                         headers={"Authorization": key or registry.api_key})


def _history(registry, item):
    days = _post(registry, "registry-model/history/item",
                 {"registryModelItemId": item, "groupedBy": "DAY"}).json()
    return [e["actionType"] for day in days.values() for e in day]


def test_a_member_promotion_under_review_is_a_request_until_an_owner_approves(local_registry):
    """A member's change to a reviewed status is recorded as a request; the owner's applies it."""
    name, item = _version(local_registry)
    config = {"status": "Production", "isReviewRequired": True, "statusConfiguration": []}
    assert _post(local_registry, f"write/registry-model/item/{item}/status-configuration",
                 config).status_code == 200
    shown = local_registry.get(f"registry-model/item/{item}/status-configuration").json()
    assert shown["isReviewRequired"] is True and shown["status"] == "Production"

    asked = _post(local_registry, "write/registry-model/item/status",
                  {"status": "Production", "modelItemId": item}, key=MEMBER_API_KEY)
    assert asked.status_code == 200 and asked.json()["status"] == "None"
    assert _history(local_registry, item)[0] == "MODEL_VERSION_STATUS_REQUEST_CHANGE"

    member_staging = _post(local_registry, "write/registry-model/item/status",
                           {"status": "Staging", "modelItemId": item}, key=MEMBER_API_KEY)
    assert member_staging.json()["status"] == "Staging"  # not a reviewed status: applied
    local_registry.set_status(name, "1.0.0", "Production")  # the owner's key
    assert local_registry.details(name)["versions"][0]["status"] == "Production"
    events = _history(local_registry, item)
    assert events[:2] == ["MODEL_VERSION_STATUS_CHANGED", "MODEL_VERSION_STATUS_REQUEST_APPROVED"]
    assert events[-1] == "MODEL_VERSION_CREATED"


def test_metadata_merges_by_key_and_model_update_renames(local_registry):
    """Item metadata is read back merged; write/registry-model/update renames a model."""
    name, item = _version(local_registry)
    for pairs in ([{"key": "a", "value": "1"}], [{"key": "a", "value": "2"},
                                                  {"key": "b", "value": "x"}]):
        assert _post(local_registry, f"write/registry-model/item/{item}/metadata",
                     {"metadata": pairs}).status_code == 200
    got = local_registry.get(f"registry-model/item/{item}/metadata").json()["metadata"]
    assert {m["key"]: m["value"] for m in got} == {"a": "2", "b": "x"}
    model_id = local_registry.details(name)["registryModelId"]
    new_name = unique_name("renamed")
    assert _post(local_registry, "write/registry-model/update",
                 {"registryModelId": model_id, "registryModelName": new_name,
                  "description": "d"}).status_code == 200
    assert local_registry.details(new_name)["description"] == "d"
    bad = _post(local_registry, f"write/registry-model/item/{item}/metadata", {"metadata": 3})
    assert bad.status_code == 400


def test_webhooks_config_is_stored_and_read_back(local_registry):
    """POST webhooks/config then GET answers the same webhook list for that model."""
    name, _ = _version(local_registry)
    hook = {"name": "sync", "url": "http://127.0.0.1:9/hook",
            "triggers": ["MODEL_VERSION_CREATED"], "header": {"Authorization": "t"}}
    body = {"webhookConfigs": [{"workspaceName": local_registry.workspace, "modelName": name,
                                "webhookUrls": [hook]}]}
    assert _post(local_registry, "webhooks/config", body).status_code == 200
    got = local_registry.get("webhooks/config", workspaceName=local_registry.workspace,
                             modelName=name).json()
    assert got["webhookConfigs"][0]["webhookUrls"] == [hook]


def _asset(registry, name):
    answer = registry.get("registry-model/item/download-instructions",
                          workspaceName=registry.workspace, modelName=name, version="1.0.0")
    return answer.json()


@pytest.mark.parametrize("compression", [zipfile.ZIP_DEFLATED, zipfile.ZIP_STORED],
                         ids=["deflated", "stored-sendfile"])
def test_get_asset_serves_byte_ranges_and_refuses_past_the_end(local_registry, compression):
    """A single Range gets 206 with Content-Range; one past the end 416 (either way served)."""
    name, _ = _version(local_registry, compression=compression)
    asset = _asset(local_registry, name)["versions"][0]["assets"][0]
    params = {"assetId": asset["assetId"], "experimentKey": asset["experimentKey"]}
    url = f"{local_registry.url}{API}/experiment/asset/get-asset"
    for header, status, body in (("bytes=100-", 206, WEIGHTS[100:]),
                                 ("bytes=10-19", 206, WEIGHTS[10:20]),
                                 ("bytes=-5", 206, WEIGHTS[-5:]), ("", 200, WEIGHTS)):
        got = requests.get(url, params=params, timeout=10, headers={
            "Authorization": local_registry.api_key, "Range": header})
        assert (got.status_code, got.content) == (status, body)
    past = requests.get(url, params=params, timeout=10, headers={
        "Authorization": local_registry.api_key, "Range": f"bytes={len(WEIGHTS)}-"})
    assert past.status_code == 416


def test_a_stored_asset_is_served_exactly_even_empty_or_altered_by_a_fault(local_registry):
    """sendfile sends an empty asset as 0 bytes (not the zip's rest); a fault still applies."""
    name = unique_name("m")
    local_registry.register_files(name, "1.0.0", {"empty.bin": b"", "w.bin": WEIGHTS},
                                  compression=zipfile.ZIP_STORED)
    assets = {a["fileName"]: a for a in _asset(local_registry, name)["versions"][0]["assets"]}

    def get(file_name):
        asset = assets[file_name]
        return local_registry.get("experiment/asset/get-asset", assetId=asset["assetId"],
                                  experimentKey=asset["experimentKey"])

    assert (get("empty.bin").status_code, get("empty.bin").content) == (200, b"")
    local_registry.add_fault(path="get-asset", corrupt=True, corrupt_offset=7, times=1)
    corrupted = get("w.bin").content
    assert len(corrupted) == len(WEIGHTS) and corrupted[7] == WEIGHTS[7] ^ 0xFF
    assert get("w.bin").content == WEIGHTS


def test_presigned_mode_gives_links_that_need_no_key_and_check_their_signature(local_registry):
    """s3DownloadEnabled with an s3Link per asset; a tampered signature is 403."""
    name, _ = _version(local_registry)
    local_registry.set_presigned(True)
    try:
        answer = _asset(local_registry, name)
    finally:
        local_registry.set_presigned(False)
    assert answer["s3DownloadEnabled"] is True
    link = answer["versions"][0]["assets"][0]["s3Link"]
    assert requests.get(link, timeout=10).content == WEIGHTS
    assert requests.get(link[:-4] + "0000", timeout=10).status_code == 403
    base, _, query = link.partition("?")
    signature = dict(pair.split("=", 1) for pair in query.split("&"))["signature"]
    for odd in ({"expires": "²", "signature": signature}, {"expires": "9" * 5000},
                {"expires": "99999999999", "signature": "é" * 8}):
        assert requests.get(base, params=odd, timeout=10).status_code == 403, odd
    assert _asset(local_registry, name)["s3DownloadEnabled"] is False


def test_a_remote_asset_is_listed_with_its_uri_and_has_no_bytes_here(local_registry):
    """An upload naming an asset's link registers a remote asset: remote true, no bytes, its
    metadata listed as the JSON string Comet lists (what comet_ml json.loads)."""
    name = unique_name("remote")
    assets = ('[{"fileName": "w.bin", "fileSize": 10240, "member": 0},'
              ' {"fileName": "big.bin", "fileSize": 5, "link": "s3://bucket/big.bin",'
              '  "metadata": {"synced": true, "file_size": 5, "version_id": "v1"}}]')
    local_registry.register_files(name, "1.0.0", {"w.bin": WEIGHTS}, assets=assets)
    listed = _asset(local_registry, name)["versions"][0]["assets"]
    remote = next(a for a in listed if a["fileName"] == "big.bin")
    assert remote["remote"] is True and remote["link"] == "s3://bucket/big.bin"
    assert json.loads(remote["metadata"]) == {"synced": True, "file_size": 5, "version_id": "v1"}
    assert next(a for a in listed if a["fileName"] == "w.bin")["metadata"] is None
    got = local_registry.get("experiment/asset/get-asset", assetId=remote["assetId"])
    assert got.status_code == 404


def test_asset_metadata_that_is_not_an_object_is_a_400_naming_it(local_registry):
    """metadata must be a JSON object (or its string): anything else is refused, nothing kept."""
    name = unique_name("remote")
    assets = '[{"fileName": "w.bin", "fileSize": 5, "link": "s3://b/w", "metadata": "[1]"}]'
    with pytest.raises(requests.HTTPError) as refused:
        local_registry.register_files(name, "1.0.0", {}, assets=assets)
    assert refused.value.response.status_code == 400
    assert "metadata" in refused.value.response.json()["msg"]


def test_faults_reach_the_new_endpoints_by_model(local_registry):
    """A rule naming a model hits its item-path endpoints and presigned links, not others'."""
    name, item = _version(local_registry)
    other, other_item = _version(local_registry)
    local_registry.add_fault(path="status-configuration", model=name, status=503)
    local_registry.add_fault(path="/presigned/", model=name, status=500)
    path = "registry-model/item/{}/status-configuration"
    assert local_registry.get(path.format(item)).status_code == 503
    assert local_registry.get(path.format(other_item)).status_code == 200
    local_registry.set_presigned(True)
    try:
        links = [_asset(local_registry, n)["versions"][0]["assets"][0]["s3Link"]
                 for n in (name, other)]
    finally:
        local_registry.set_presigned(False)
    assert [requests.get(link, timeout=10).status_code for link in links] == [500, 200]
