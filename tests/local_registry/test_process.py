"""The local registry as a process: restarts, signals, concurrency, workspaces, CLI errors."""

from __future__ import annotations

import io
import signal
import subprocess
import sys
import zipfile
from concurrent.futures import ThreadPoolExecutor

import pytest

from devkit.registry import (
    REPO_ROOT,
    running_local_registry,
    start_local_registry,
    unique_name,
    zip_bytes,
)


def test_data_survives_a_restart(local_registry):
    """Models, versions, statuses, tags, notes and zips are all there after a restart."""
    name, body = unique_name(), zip_bytes({"model.pkl": b"weights"})
    local_registry.register_zip(name, "1.0.0", body, tags=["Canary"])
    local_registry.set_status(name, "1.0.0", "Production")
    local_registry.post("write/registry-model/notes", {
        "workspaceName": local_registry.workspace, "registryModelName": name, "notes": "kept"})
    before = local_registry.details(name)
    local_registry.restart()
    assert local_registry.details(name) == before
    assert local_registry.download(name, stage="canary") == body
    notes = local_registry.get("registry-model/notes", workspaceName=local_registry.workspace,
                               modelName=name)
    assert notes.json() == {"notes": "kept"}


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signals_stop_the_server_cleanly(tmp_path, signum):
    """SIGTERM and SIGINT stop the server with exit code 0 and a stop event."""
    registry = start_local_registry(tmp_path / "data")
    registry.process.send_signal(signum)
    assert registry.process.wait(10) == 0
    assert '"event":"local_registry_stopped"' in registry.logs()


def test_concurrent_uploads_and_promotions(local_registry):
    """Parallel uploads of distinct versions and parallel promotions all land, none lost."""
    name = unique_name()
    versions = [f"1.{i}.0" for i in range(12)]

    def upload(version: str) -> dict:
        return local_registry.register_files(name, version, {"v.txt": version.encode()})

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(upload, versions))
    assert len({a["registryModelItemId"] for a in answers}) == len(versions)
    details = local_registry.details(name)
    assert sorted(v["version"] for v in details["versions"]) == sorted(versions)

    def promote(item: dict) -> int:
        return local_registry.post("write/registry-model/item/status", {
            "status": "Production", "modelItemId": item["registryModelItemId"]}).status_code

    with ThreadPoolExecutor(8) as pool:
        assert set(pool.map(promote, details["versions"])) == {200}
    assert {v["status"] for v in local_registry.details(name)["versions"]} == {"Production"}
    for version in versions:
        archive = zipfile.ZipFile(io.BytesIO(local_registry.download(name, version=version)))
        assert archive.read("v.txt") == version.encode()


def test_racing_uploads_of_one_version_keep_exactly_one(local_registry):
    """Uploads of the same version at once: one wins, the others get 409."""
    name = unique_name()
    query = {"workspaceName": local_registry.workspace, "registryModelName": name,
             "version": "1.0.0"}

    def upload(i: int) -> int:
        return local_registry.session.post(
            f"{local_registry.api_url}/write/registry-model/item/upload", params=query,
            data=zip_bytes({"i": str(i)}), headers=local_registry.headers, timeout=30).status_code

    with ThreadPoolExecutor(6) as pool:
        codes = sorted(pool.map(upload, range(6)))
    assert codes == [200] + [409] * 5
    assert len(local_registry.details(name)["versions"]) == 1


def test_restricted_workspaces_refuse_others(tmp_path):
    """With --workspace, any other workspace is a 400 Constraint-Violation."""
    with running_local_registry(tmp_path / "data", workspace="team",
                                workspaces=["team", "other"]) as registry:
        registry.register_files("m", "1.0.0", {"a": b"1"})
        assert registry.get("registry-model", workspaceName="other").json() == {
            "registryModels": []}
        refused = registry.get("registry-model", workspaceName="nope")
        assert refused.status_code == 400
        assert refused.json()["msg"] == "Bad Request (Constraint-Violation)"
        upload = registry.session.post(
            f"{registry.api_url}/write/registry-model/item/upload",
            params={"workspaceName": "nope", "registryModelName": "m", "version": "1.0.0"},
            data=b"x", headers=registry.headers, timeout=5)
        assert upload.status_code == 400


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "local_registry", *args],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=30)


def test_missing_api_key_is_a_configuration_error(tmp_path):
    """Without --api-key the command exits 2 with one line naming the flag."""
    done = _cli("--data", str(tmp_path))
    assert done.returncode == 2 and "--api-key" in done.stderr


def test_busy_port_fails_with_one_line(tmp_path, local_registry):
    """A port already in use exits 1 with one line naming the address, never a traceback."""
    done = _cli("--data", str(tmp_path), "--api-key", "k", "--port", str(local_registry.port))
    assert done.returncode == 1
    assert f"cannot listen on 127.0.0.1:{local_registry.port}" in done.stderr
    assert "Traceback" not in done.stderr


def test_api_key_never_logged(local_registry):
    """The key given on the command line does not appear in the server's logs."""
    local_registry.get("registry-model/no-such-endpoint")
    assert "unknown_endpoint" in local_registry.logs()
    assert local_registry.api_key not in local_registry.logs()
