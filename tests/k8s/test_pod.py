"""The pod of k8s/ simulated on this machine: the two containers' exact commands and env, as
processes sharing a MODEL_ROOT, against the local registry: first sync, ready, predictions,
promotion, swap. Only the listen host differs from the pod (127.0.0.1 instead of 0.0.0.0)."""

import os
import subprocess
import time
from pathlib import Path

import pytest
import requests

from devkit.models import trained_models  # noqa: F401
from devkit.processes import free_port, wait_until
from devkit.registry import local_registry, local_registry_server  # noqa: F401
from tests.support import pod

SAMPLE = {"carat": 0.31, "color": "E", "clarity": "SI1", "depth": 61.5, "table": 55.0,
          "price": 420, "x": 4.3, "y": 4.32, "z": 2.65}
MODEL = "diamonds-classifier"


def start(container: pod.Container, log: Path) -> subprocess.Popen:
    """Start a container's exact command with its environment, on loopback only."""
    env = {**os.environ, **{k: v.replace("0.0.0.0:", "127.0.0.1:")
                            for k, v in container.env.items()}}
    with open(log, "wb") as out:
        return subprocess.Popen(container.local_argv(), env=env, stdout=out,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)


def probe_ok(container: pod.Container, kind: str) -> bool:
    path, port = container.probes[kind]
    return requests.get(f"http://127.0.0.1:{port}{path}", timeout=2).status_code == 200


@pytest.fixture
def processes():
    started: list[subprocess.Popen] = []
    yield started
    for process in reversed(started):
        process.terminate()
    for process in started:
        try:
            assert process.wait(20) == 0, "a container did not stop cleanly on SIGTERM"
        except subprocess.TimeoutExpired:
            process.kill()
            raise


def test_first_sync_ready_predictions_promotion_swap(local_registry, trained_models,  # noqa: F811
                                                     tmp_path, processes):
    local_registry.register_folder(MODEL, "1.0.0", trained_models.pipeline, status="Production")
    local_registry.register_folder(MODEL, "1.1.0", trained_models.alternative)
    ports = {8080: free_port(), 8081: free_port(), 8082: free_port(), 8090: free_port()}
    resolved = pod.load(tmp_path / "pod", ports=ports,
                        secrets={"api-key": local_registry.api_key,
                                 "reload-token": "pod-reload-token-5150"},
                        config={"COMET_WORKSPACE": local_registry.workspace,
                                "COMET_URL_OVERRIDE": local_registry.comet_url_override,
                                "SYNC_INTERVAL": "0.5"})
    sidecar, serving = resolved["registry-sync"], resolved["serving"]
    processes.append(start(sidecar, tmp_path / "sidecar.log"))
    wait_until(lambda: probe_ok(sidecar, "startup"), 60, what="the sidecar's startup probe")
    processes.append(start(serving, tmp_path / "serving.log"))  # kubelet: after the startup probe
    wait_until(lambda: probe_ok(serving, "readiness"), 60, what="serving's readiness probe")
    assert probe_ok(serving, "liveness") and probe_ok(sidecar, "liveness")

    public = f"http://127.0.0.1:{ports[8080]}"
    answer = requests.post(f"{public}/api/v1/predict", json=SAMPLE, timeout=10)
    assert answer.status_code == 200 and answer.headers["X-Model-Version"] == "1.0.0"
    assert requests.post(f"{public}/-/reload", json={}, timeout=5).status_code == 404
    # Prometheus scrapes serving on its `metrics` port (the PodMonitor); the Service's is mute
    assert requests.get(f"{public}/metrics", timeout=5).status_code == 404
    assert "serving_requests_total" in requests.get(f"http://127.0.0.1:{ports[8082]}/metrics",
                                                    timeout=5).text

    local_registry.set_status(MODEL, "1.1.0", "Production")
    promoted = time.monotonic()
    wait_until(lambda: requests.post(f"{public}/api/v1/predict", json=SAMPLE, timeout=5)
               .headers["X-Model-Version"] == "1.1.0", 30, what="1.1.0 served")
    assert time.monotonic() - promoted < 10
    # A worker's own watcher may serve 1.1.0 before the sidecar's reload call is answered.
    wait_until(lambda: '"event":"serving_reloaded"' in (tmp_path / "sidecar.log").read_text(),
               30, what="the sidecar's reload answered")
    sidecar_log = (tmp_path / "sidecar.log").read_text()
    assert "pod-reload-token-5150" not in sidecar_log + (tmp_path / "serving.log").read_text()
