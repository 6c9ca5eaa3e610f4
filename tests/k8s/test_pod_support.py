"""tests.support.pod: the Deployment's containers resolved into local commands and env."""

from __future__ import annotations

import sys
from pathlib import Path

from tests.support import pod

SECRETS = {"api-key": "local-api-key", "reload-token": "local-reload-token"}
PORTS = {8080: 18080, 8081: 18081, 8090: 18090}


def test_the_pod_starts_with_its_native_sidecar_then_serving(tmp_path: Path):
    """Containers come in start order, with their exact command and args."""
    resolved = pod.load(tmp_path)
    assert [(c.name, c.sidecar) for c in resolved.containers] == [
        ("registry-sync", True), ("serving", False)]
    assert resolved["registry-sync"].argv == ["registry-sync", "run"]
    assert resolved["serving"].argv == ["python", "-m", "serving.front"]
    assert resolved["registry-sync"].local_argv() == [sys.executable, "-m", "registry_sync.cli",
                                                      "run"]
    assert resolved["serving"].local_argv()[0] == sys.executable


def test_both_containers_share_one_local_model_root(tmp_path: Path):
    """MODEL_ROOT=/models maps to one directory under root for both containers."""
    resolved = pod.load(tmp_path)
    sidecar, serving = resolved["registry-sync"], resolved["serving"]
    assert sidecar.env["MODEL_ROOT"] == serving.env["MODEL_ROOT"] == str(
        tmp_path / "volumes" / "models")
    assert Path(sidecar.env["MODEL_ROOT"]).is_dir()
    assert serving.env["PROMETHEUS_MULTIPROC_DIR"] == str(tmp_path / "volumes" / "prometheus")


def test_secrets_become_files_and_the_token_is_shared(tmp_path: Path):
    """Secret volumes are written with the given values; both read the same reload token."""
    resolved = pod.load(tmp_path, secrets=SECRETS)
    sidecar, serving = resolved["registry-sync"], resolved["serving"]
    assert Path(sidecar.env["COMET_API_KEY_FILE"]).read_text() == "local-api-key"
    assert Path(sidecar.env["RELOAD_TOKEN_FILE"]).read_text() == "local-reload-token"
    assert Path(serving.env["RELOAD_TOKEN_FILE"]).read_text() == "local-reload-token"
    assert "COMET_API_KEY_FILE" not in serving.env
    assert not (Path(serving.env["RELOAD_TOKEN_FILE"]).parent / "api-key").exists()


def test_config_map_and_downward_api_values_are_resolved(tmp_path: Path):
    """configMapKeyRef values (overridable) and fieldRef values of the pod."""
    resolved = pod.load(tmp_path, pod_name="p-1", namespace="ns-1",
                        config={"COMET_WORKSPACE": "ws", "REGISTRY_MODELS": "m1,m2"})
    env = resolved["registry-sync"].env
    assert (env["COMET_WORKSPACE"], env["REGISTRY_MODELS"]) == ("ws", "m1,m2")
    assert (env["POD_NAME"], env["POD_NAMESPACE"], env["POD_UID"]) == ("p-1", "ns-1",
                                                                       pod.DEFAULT_UID)
    assert env["REGISTRY_STATUS"] == "Production"
    assert (tmp_path / "volumes" / "kube-api-access" / "namespace").read_text() == "ns-1"
    assert not (tmp_path / "volumes" / "kube-api-access" / "token").exists()


def test_ports_are_remapped_consistently(tmp_path: Path):
    """Listen addresses, the admin URL and the probes move to the given local ports together."""
    resolved = pod.load(tmp_path, ports=PORTS)
    sidecar, serving = resolved["registry-sync"], resolved["serving"]
    assert sidecar.env["SIDECAR_LISTEN"] == "0.0.0.0:18090"
    assert sidecar.env["SERVING_URL"] == "http://127.0.0.1:18081"
    assert (serving.env["BIND"], serving.env["ADMIN_PORT"]) == ("0.0.0.0:18080", "18081")
    assert sidecar.probes["startup"] == ("/readyz", 18090)
    assert serving.probes["readiness"] == ("/readyz", 18080)
