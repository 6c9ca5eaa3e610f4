"""The real comet_ml 3.58.8 SDK as a client of the local registry, run in a separate process.

The SDK process gets its own HOME and environment (devkit.registry.sdk_env), so its
COMET_* variables never leak into other tests, and a dead proxy keeps it off the internet.
"""

from __future__ import annotations

import io
import json
import re
import zipfile

import pytest

from devkit.registry import MEMBER_API_KEY, run_sdk_script, unique_name

FILES_1 = {"model.pkl": b"\x80\x04first-weights" * 100, "out/config.json": b'{"v": 1}'}
FILES_2 = {"model.pkl": b"\x80\x04second-weights" * 100, "out/config.json": b'{"v": 2}'}

SCENARIO = r"""
import json, os, sys, tempfile
import comet_ml

ws, name = sys.argv[1], sys.argv[2]


def files(folder):
    found = {}
    for root, _, names in os.walk(folder):
        for n in names:
            path = os.path.join(root, n)
            found[os.path.relpath(path, folder)] = open(path, "rb").read().hex()
    return found


api = comet_ml.API()
result = {"names": api.get_registry_model_names(ws)}
details = api.get_registry_model_details(ws, name)
result["details_versions"] = [v["version"] for v in details["versions"]]
result["details_version"] = api.get_registry_model_details(ws, name, "1.0.0")["version"]
result["allowed"] = api.model_registry_allowed_status_values(ws)
model = api.get_model(ws, name)
result["production_before"] = model.find_versions(status="Production")
model.set_status("1.0.0", "Production")
result["production_after"] = model.find_versions(status="Production")
result["status"] = model.status("1.0.0")
model.add_tag("1.1.0", "canary")
result["tags"] = model.tags("1.1.0")
result["found_by_tag"] = model.find_versions(tag="canary")
out = tempfile.mkdtemp()
api.download_registry_model(ws, name, version="1.0.0", output_path=out)
result["download_registry_model"] = files(out)
out = tempfile.mkdtemp()
model.download("1.1.0", out)
result["model_download"] = files(out)
result["assets"] = sorted(a["fileName"] for a in model.get_assets("1.1.0"))
history = model.get_version_history("1.0.0")
result["history"] = [e["actionType"] for day in history.values() for e in day]
model.update_registry_model_metadata({"team": "fraud"}, version="1.0.0")
result["metadata"] = model.get_registry_model_metadata(version="1.0.0")
from comet_ml.api_objects.model.status_configuration import ModelStatusConfiguration
model.update_registry_model_status_configuration(
    ModelStatusConfiguration("Production", True, []), version="1.1.0")
config = model.get_registry_model_status_configuration(version="1.1.0")
result["review"] = [config.status, config.is_review_required]
member = comet_ml.API(api_key=os.environ["MEMBER_KEY"]).get_model(ws, name)
member.set_status("1.1.0", "Production")
result["member_status"] = model.status("1.1.0")
result["member_history"] = [e["actionType"] for d in model.get_version_history("1.1.0").values()
                            for e in d][0]
import requests
admin = os.environ["COMET_URL_OVERRIDE"].replace("/clientlib/", "/-/presigned")
requests.put(admin, json={"enabled": True}, headers={"Authorization": os.environ["COMET_API_KEY"]})
try:
    out = tempfile.mkdtemp()
    model.download("1.0.0", out)
    result["presigned_download"] = files(out)
finally:
    requests.put(admin, json={"enabled": False},
                 headers={"Authorization": os.environ["COMET_API_KEY"]})
print(json.dumps(result))
"""


@pytest.fixture(scope="module")
def sdk_run(local_registry_server, tmp_path_factory):
    """One SDK session against a model with two versions: what it saw, and the model name."""
    name = unique_name("sdk")
    local_registry_server.register_files(name, "1.0.0", FILES_1)
    local_registry_server.register_files(name, "1.1.0", FILES_2)
    local_registry_server.reset_request_counts()
    home = tmp_path_factory.mktemp("sdk-home")
    argv = [local_registry_server.workspace, name]
    member = f"import os; os.environ['MEMBER_KEY'] = {MEMBER_API_KEY!r}\n"
    code = member + _with_argv(SCENARIO, argv)
    seen = run_sdk_script(local_registry_server, code, home, allow_errors=False)
    return {"name": name, "seen": seen, "counts": local_registry_server.request_counts()}


def _with_argv(code: str, argv: list[str]) -> str:
    return f"import sys; sys.argv[1:] = {json.dumps(argv)}\n" + code


def _hex(files: dict[str, bytes]) -> dict[str, str]:
    return {name: content.hex() for name, content in files.items()}


def test_sdk_lists_models_and_details(sdk_run):
    """get_registry_model_names and get_registry_model_details see what was stored."""
    seen = sdk_run["seen"]
    assert sdk_run["name"] in seen["names"]
    assert seen["details_versions"] == ["1.1.0", "1.0.0"]
    assert seen["details_version"] == "1.0.0"
    assert seen["allowed"] == ["None", "Development", "Staging", "Production"]


def test_sdk_promotes_with_set_status_and_finds_it(sdk_run, local_registry):
    """Model.set_status promotes; find_versions(status=...) and the registry agree."""
    seen = sdk_run["seen"]
    assert seen["production_before"] == []
    assert seen["production_after"] == ["1.0.0"]
    assert seen["status"] == "Production"
    versions = {v["version"]: v for v in local_registry.details(sdk_run["name"])["versions"]}
    assert versions["1.0.0"]["status"] == "Production"


def test_sdk_adds_tags(sdk_run, local_registry):
    """Model.add_tag adds a tag the registry lists, and find_versions(tag=...) finds it."""
    assert sdk_run["seen"]["tags"] == ["canary"]
    assert sdk_run["seen"]["found_by_tag"] == ["1.1.0"]
    versions = {v["version"]: v for v in local_registry.details(sdk_run["name"])["versions"]}
    assert versions["1.1.0"]["tags"] == ["canary"]


def test_sdk_download_registry_model_unzips_the_stored_files(sdk_run, local_registry):
    """API.download_registry_model gets the stored zip and unzips exactly its files."""
    assert sdk_run["seen"]["download_registry_model"] == _hex(FILES_1)
    archive = zipfile.ZipFile(io.BytesIO(local_registry.download(sdk_run["name"],
                                                                 version="1.0.0")))
    assert {n: archive.read(n) for n in archive.namelist()} == FILES_1


def test_sdk_model_download_fetches_each_asset(sdk_run):
    """Model.download fetches every asset through get-asset into the output folder."""
    assert sdk_run["seen"]["model_download"] == _hex(FILES_2)
    assert sdk_run["seen"]["assets"] == sorted(FILES_2)


def test_sdk_reads_history_metadata_and_status_configuration(sdk_run):
    """get_version_history, item metadata and status configuration round-trip through the SDK."""
    seen = sdk_run["seen"]
    assert seen["history"][0] == "MODEL_VERSION_STATUS_CHANGED"
    assert seen["history"][-1] == "MODEL_VERSION_CREATED"
    assert seen["metadata"] == [{"key": "team", "value": "fraud"}]
    assert seen["review"] == ["Production", True]


def test_sdk_set_status_by_a_member_under_review_is_only_a_request(sdk_run):
    """A member's Model.set_status under review leaves the status and records a request."""
    assert sdk_run["seen"]["member_status"] == "None"
    assert sdk_run["seen"]["member_history"] == "MODEL_VERSION_STATUS_REQUEST_CHANGE"


def test_sdk_model_download_follows_presigned_links(sdk_run):
    """With s3DownloadEnabled, Model.download fetches every asset from its presigned link."""
    assert sdk_run["seen"]["presigned_download"] == _hex(FILES_1)
    assert any(p.startswith("/presigned/") for p in sdk_run["counts"]["by_path"])


def test_sdk_uses_only_documented_endpoints(sdk_run):
    """Everything the SDK called is served: isAlive plus §2's endpoints, nothing unknown."""
    paths = set(sdk_run["counts"]["by_path"])
    assert "/clientlib/isAlive/ver" in paths
    assert "/api/rest/v2/experiment/asset/get-asset" in paths
    assert "/api/rest/v2/registry-model/compact-details" in paths
    documented = {
        "registry-model", "registry-model/details", "registry-model/compact-details",
        "registry-model/item/details", "registry-model/items",
        "registry-model/allowed_status_values", "registry-model/item/download",
        "registry-model/item/download-instructions", "experiment/asset/get-asset",
        "write/registry-model/item/status", "write/registry-model/item/stage",
        "registry-model/history/item",
    }
    item = {"registry-model/item/{id}/metadata", "write/registry-model/item/{id}/metadata",
            "registry-model/item/{id}/status-configuration",
            "write/registry-model/item/{id}/status-configuration"}
    templates = {re.sub(r"/item/[A-Za-z0-9]+/", "/item/{id}/", p) for p in paths}
    served = {f"/api/rest/v2/{p}" for p in documented | item}
    assert {p for p in templates - {"/clientlib/isAlive/ver"}
            if not p.startswith("/presigned/")} <= served


def test_sdk_maps_404_and_401_to_its_own_errors(local_registry, tmp_path):
    """An unknown model is the SDK's NotFound; a wrong key is its Unauthorized."""
    code = (
        "import json, sys, comet_ml\n"
        "def error(call):\n"
        "    try:\n"
        "        call()\n"
        "    except Exception as exc:\n"
        "        return type(exc).__name__\n"
        "ws = sys.argv[1]\n"
        "print(json.dumps([error(lambda: comet_ml.API().get_model(ws, 'no-such-model')),\n"
        "    error(lambda: comet_ml.API(api_key='wrong').get_registry_model_names(ws))]))\n"
    )
    code = _with_argv(code, [local_registry.workspace])
    assert run_sdk_script(local_registry, code, tmp_path / "home") == ["NotFound", "Unauthorized"]
