"""`registry-sync register` and `promote` against the local registry, as scripts and CI use them."""

import base64
import json
import subprocess
import sys
import uuid

import requests

from devkit.processes import REPO_ROOT, free_port, published_versions, python_env
from devkit.registry import MEMBER_API_KEY, running_local_registry, unique_name
from registry_sync.registries.comet.register import registry_page

from .test_sidecar import cli as sidecar_cli


def cli(registry, *args):
    return subprocess.run([sys.executable, "-m", "registry_sync.cli", *args], cwd=REPO_ROOT,
                          env=python_env(**registry.env()), capture_output=True, text=True,
                          timeout=60)


def test_register_a_folder_then_promote_and_demote_the_previous(local_registry, tmp_path):
    name = unique_name("clf")
    folder = tmp_path / "model"
    (folder / "sub").mkdir(parents=True)
    (folder / "pipeline.skops").write_bytes(b"p" * 100)
    (folder / "sub" / "metadata.json").write_text("{}")
    done = cli(local_registry, "register", "--model", name, "--version", "1.0.0", "--status",
               "Production", str(folder))
    assert done.returncode == 0, done.stderr
    assert f"registered {local_registry.workspace}/{name} 1.0.0 (status Production)" in done.stdout
    assert done.stderr == ""  # one-shot commands print no log lines unless something is wrong
    assets = {a["fileName"]: a["fileSize"]
              for a in local_registry.details(name)["versions"][0]["assets"]}
    assert assets == {"pipeline.skops": 100, "sub/metadata.json": 2}

    assert cli(local_registry, "register", "--model", name, "--version", "1.1.0",
               str(folder / "pipeline.skops")).returncode == 0
    done = cli(local_registry, "promote", name, "1.1.0", "--tag", "canary", "--demote-to", "None")
    assert done.returncode == 0, done.stderr
    assert "demoted" in done.stdout and "Production version is now 1.1.0" in done.stdout
    item = local_registry.get("registry-model/item/details", workspaceName=local_registry.workspace,
                              modelName=name, version="1.1.0").json()
    assert item["status"] == "Production" and item["tags"] == ["canary"]
    assert local_registry.status_of(name, "1.0.0") == "None"

    cleared = cli(local_registry, "promote", name, "1.1.0", "--status", "None")
    assert cleared.returncode == 0, cleared.stderr
    assert cleared.stdout.strip() == (
        f"set {local_registry.workspace}/{name} 1.1.0 to no status (None)")


def test_register_names_the_models_page_a_browser_can_open(local_registry, tmp_path):
    """The link printed is the registry page of the model (after logging in), not a REST URL
    that answers a browser 401."""
    name = unique_name("page")
    (tmp_path / "model.bin").write_bytes(b"m")
    done = cli(local_registry, "register", "--model", name, "--version", "1.0.0",
               str(tmp_path / "model.bin"))
    link = done.stdout.rsplit("— see ", 1)[1].strip()
    assert link == f"{local_registry.url}/ui/models/{local_registry.workspace}/{name}"
    browser = requests.Session()
    browser.post(f"{local_registry.url}/ui/login", data={"api_key": local_registry.api_key},
                 timeout=10)
    page = browser.get(link, timeout=10)
    assert page.status_code == 200 and name in page.text and "1.0.0" in page.text


def test_the_page_on_comet_is_its_model_registry_page():
    assert registry_page("https://www.comet.com", "ws", "diamonds classifier", local=False) == (
        "https://www.comet.com/ws/model-registry/diamonds%20classifier")


def test_mistakes_get_one_clear_line(local_registry, tmp_path):
    missing = cli(local_registry, "register", "--model", "m", "--version", "1.0.0",
                  str(tmp_path / "nope"))
    assert missing.returncode == 2
    assert missing.stderr.strip().endswith("is neither a file nor a folder")
    unknown = cli(local_registry, "promote", unique_name("ghost"), "1.0.0")
    assert unknown.returncode == 1 and "not found in workspace" in unknown.stderr
    assert "Traceback" not in missing.stderr + unknown.stderr


def test_a_member_promotion_stays_pending_until_an_owner_approves_then_is_served(
        local_registry, tmp_path):
    """Under review `promote` says pending (exit 3) and 1.0.0 stays; once approved, 1.1.0."""
    name = unique_name("clf")
    model = tmp_path / "w.bin"
    model.write_bytes(b"weights")
    assert cli(local_registry, "register", "--model", name, "--version", "1.0.0", "--status",
               "Production", str(model)).returncode == 0
    done = cli(local_registry, "register", "--model", name, "--version", "1.1.0",
               "--metadata", "team=fraud", "--review-status", "Production", str(model))
    assert done.returncode == 0, done.stderr
    item = local_registry.item_id(name, "1.1.0")
    assert local_registry.get(f"registry-model/item/{item}/metadata").json()["metadata"] == [
        {"key": "team", "value": "fraud"}]
    assert local_registry.get(
        f"registry-model/item/{item}/status-configuration").json()["isReviewRequired"] is True

    asked = subprocess.run(
        [sys.executable, "-m", "registry_sync.cli", "promote", name, "1.1.0", "--demote-to",
         "None"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60,
        env=python_env(**{**local_registry.env(), "COMET_API_KEY": MEMBER_API_KEY}))
    assert asked.returncode == 3, asked.stderr
    assert "requested; pending approval" in asked.stdout
    root = tmp_path / "models"
    assert sidecar_cli(local_registry, root, name, "once").returncode == 0
    assert published_versions(root) == {name: "1.0.0"}  # the request is not followed
    shown = sidecar_cli(local_registry, root, name, "status", "--registry")
    assert f"pending      {name} 1.1.0 to Production, requested by member" in shown.stdout

    approved = cli(local_registry, "promote", name, "1.1.0", "--demote-to", "None")
    assert approved.returncode == 0 and "Production: changed" in approved.stdout
    assert sidecar_cli(local_registry, root, name, "once").returncode == 0
    assert published_versions(root) == {name: "1.1.0"}


def _key_naming(url: str) -> str:
    suffix = base64.b64encode(json.dumps({"baseUrl": url}).encode()).decode().rstrip("=")
    return f"k{uuid.uuid4().hex[:24]}*{suffix}"


def test_a_key_carrying_its_server_reaches_it_without_url_override(tmp_path):
    """COMET_API_KEY=<key>*<base64 {"baseUrl"}> and no COMET_URL_OVERRIDE: that server is used."""
    port = free_port()
    key = _key_naming(f"http://127.0.0.1:{port}/")
    with running_local_registry(tmp_path / "data", api_key=key, port=port) as registry:
        name = unique_name("clf")
        registry.register_files(name, "1.0.0", {"w.bin": b"w"}, status="Production")
        root = tmp_path / "models"
        done = sidecar_cli(registry, root, name, "once", COMET_URL_OVERRIDE="")
        assert done.returncode == 0, done.stderr
        assert published_versions(root) == {name: "1.0.0"}
        env = python_env(COMET_API_KEY=key, COMET_WORKSPACE=registry.workspace,
                         COMET_URL_OVERRIDE="")
        promoted = subprocess.run([sys.executable, "-m", "registry_sync.cli", "promote", name,
                                   "1.0.0", "--status", "Staging"], cwd=REPO_ROOT, env=env,
                                  capture_output=True, text=True, timeout=60)
        assert promoted.returncode == 0, promoted.stderr
    broken = sidecar_cli(registry, root, name, "once", COMET_URL_OVERRIDE="",
                         COMET_API_KEY=key.split("*")[0] + "*%%%")
    assert broken.returncode == 2
    assert "COMET_API_KEY is malformed" in broken.stderr and key[:10] not in broken.stderr
