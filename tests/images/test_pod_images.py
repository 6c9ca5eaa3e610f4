"""The pod of k8s/ run from the images `make images` built, against the local registry.

Each container is its image run with buildah (no daemon; the host's network, so the ports are
remapped to free loopback ones): the image's ENTRYPOINT/CMD, which must be the Deployment's
command, the Deployment's env, and the manifest's volumes as host folders — one `models` folder
shared by both, the Secret as mounted files. Runs only once the images are built from this tree
(`make test-images`); skipped otherwise, saying why.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
from pathlib import Path

import pytest
import requests

from devkit.models import trained_models  # noqa: F401
from devkit.processes import free_port, wait_until
from devkit.registry import local_registry, local_registry_server  # noqa: F401
from tests.support import buildah, pod

pytestmark = pytest.mark.images

UID = GID = 10001  # the pod's runAsUser / runAsGroup / fsGroup
MODEL = "diamonds-classifier"
TOKEN = "images-reload-token-6262"
SAMPLE = {"carat": 0.31, "color": "E", "clarity": "SI1", "depth": 61.5, "table": 55.0,
          "price": 420, "x": 4.3, "y": 4.32, "z": 2.65}
KIND = {"registry-sync": "sidecar", "serving": "serving"}  # container name -> image kind
PROBE = """import importlib, json, sys
found = {}
for name in sys.argv[1:]:
    try:
        importlib.import_module(name)
        found[name] = True
    except ModuleNotFoundError:
        found[name] = False
print(json.dumps(found))
"""


@pytest.fixture(scope="session")  # session: checked before the session's trained models
def images() -> dict[str, dict]:
    """The records of the built images; a skip (a failure under REQUIRE_IMAGES=1) without them."""
    found, why = buildah.built_images()
    if found is None:
        if os.environ.get("REQUIRE_IMAGES") == "1":
            pytest.fail(why)
        pytest.skip(why)
    return found


@pytest.fixture
def containers():
    """Factory of working containers, each removed at the end."""
    made: list[buildah.Container] = []

    def create(image: str) -> buildah.Container:
        made.append(buildah.Container.create(image))
        return made[-1]

    yield create
    for container in made:
        container.remove()


@pytest.fixture
def launched(containers):
    """The pod's running containers: whatever still runs at the end is stopped, then killed."""
    running: list[Started] = []
    yield running
    for box in reversed(running):
        if box.runner is not None and box.runner.poll() is None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                buildah.stop(box.runner, timeout=20)


def importable(container: buildah.Container, modules: list[str]) -> dict[str, bool]:
    """Which modules import in the image (with the image's own user and env)."""
    command = ["python", "-c", PROBE, *modules]
    done = subprocess.run(container.argv(command, {}, {}), capture_output=True, text=True,
                          timeout=120, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_each_image_holds_only_its_own_side(images, containers):
    """The sidecar image has no Flask or scikit-learn; serving's no Kubernetes client."""
    sidecar = importable(containers(images["sidecar"]["name"]),
                         ["registry_sync.cli", "kubernetes", "flask", "sklearn", "serving"])
    assert sidecar == {"registry_sync.cli": True, "kubernetes": True, "flask": False,
                       "sklearn": False, "serving": False}
    serving = importable(containers(images["serving"]["name"]),
                         ["serving.front", "flask", "sklearn", "kubernetes", "registry_sync"])
    assert serving == {"serving.front": True, "flask": True, "sklearn": True,
                       "kubernetes": False, "registry_sync": False}


def deployment_spec() -> dict:
    """The pod template's spec of k8s/deployment.yaml."""
    [deployment] = [d for d in pod.documents() if d["kind"] == "Deployment"]
    return deployment["spec"]["template"]["spec"]


def apply_fs_group(resolved: pod.Pod, spec: dict) -> None:
    """What the kubelet does for fsGroup: emptyDirs writable by it, Secret files readable."""
    for volume in spec["volumes"]:
        local = resolved.volumes[volume["name"]]
        if "emptyDir" in volume:
            os.chown(local, UID, GID)
            local.chmod(0o2777)
            continue
        for path in [local, *local.rglob("*")]:
            os.chown(path, 0, GID)


def mounts_of(container: pod.Container, spec: dict) -> dict[str, tuple[Path, bool]]:
    """{mountPath: (host folder, read-only)} of a container of the manifest."""
    [manifest] = [c for c in [*spec["initContainers"], *spec["containers"]]
                  if c["name"] == container.name]
    return {m["mountPath"]: (container.mounts[m["mountPath"]], bool(m.get("readOnly")))
            for m in manifest["volumeMounts"]}


def container_env(container: pod.Container) -> dict[str, str]:
    """The Deployment's env as the container sees it: mount paths back, loopback for 0.0.0.0."""
    env = {}
    for key, value in container.env.items():
        for mount_path, local in container.mounts.items():
            if value == str(local) or value.startswith(f"{local}/"):
                value = mount_path + value[len(str(local)):]
        env[key] = value.replace("0.0.0.0:", "127.0.0.1:")
    return env


def probe_ok(container: pod.Container, kind: str) -> bool:
    """The manifest's HTTP probe of that kind answers 200."""
    path, port = container.probes[kind]
    return requests.get(f"http://127.0.0.1:{port}{path}", timeout=2).status_code == 200


class Started:
    """One container of the pod running from its image."""

    def __init__(self, spec: pod.Container, image: buildah.Container, manifest: dict,
                 log: Path) -> None:
        self.spec, self.image, self.log = spec, image, log
        self.env, self.mounts = container_env(spec), mounts_of(spec, manifest)
        self.runner: subprocess.Popen | None = None

    def start(self, command: list[str]) -> None:
        """Start the command in the container with the Deployment's env and mounts."""
        with open(self.log, "wb") as out:
            self.runner = subprocess.Popen(self.image.argv(command, self.env, self.mounts),
                                           stdout=out, stderr=subprocess.STDOUT,
                                           stdin=subprocess.DEVNULL)

    def run(self, command: list[str]) -> subprocess.CompletedProcess:
        """Another command in the same container, env and mounts (as `docker exec` would)."""
        return subprocess.run(self.image.argv(command, self.env, self.mounts),
                              capture_output=True, text=True, timeout=120, check=False)

    def ids(self) -> set[tuple[int, int]]:
        """The (uid, gid) pairs, real and effective, of the processes inside the container."""
        found = set()
        for process in buildah.contained(self.runner):
            uids, gids = process.uids(), process.gids()
            found |= {(uids.real, gids.real), (uids.effective, gids.effective)}
        return found


def test_the_pod_from_its_images_serves_a_promotion(images, containers, launched, tmp_path,
                                                    local_registry, trained_models):  # noqa: F811
    """First version served, then a promotion without a restart; uid 10001, nothing written."""
    local_registry.register_folder(MODEL, "1.0.0", trained_models.pipeline, status="Production")
    local_registry.register_folder(MODEL, "1.1.0", trained_models.alternative)
    ports = {port: free_port() for port in (8080, 8081, 8090)}
    manifest = deployment_spec()
    resolved = pod.load(tmp_path / "pod", ports=ports,
                        secrets={"api-key": local_registry.api_key, "reload-token": TOKEN},
                        config={"COMET_WORKSPACE": local_registry.workspace,
                                "COMET_URL_OVERRIDE": local_registry.comet_url_override,
                                "SYNC_INTERVAL": "0.5"})
    apply_fs_group(resolved, manifest)
    started, before, healthchecks = {}, {}, {}
    for spec in resolved.containers:  # native sidecar first
        record = images[KIND[spec.name]]
        assert record["name"] == f"localhost/{spec.image}", "the manifest runs another image"
        config = buildah.image_config(record["name"])
        command = [*(config.get("Entrypoint") or []), *(config.get("Cmd") or [])]
        assert spec.argv == command, "the Deployment's command is not the image's"
        healthchecks[spec.name] = config["Healthcheck"]["Test"]
        box = started[spec.name] = Started(spec, containers(record["name"]), manifest,
                                           tmp_path / f"{spec.name}.log")
        launched.append(box)
        assert box.run(["true"]).returncode == 0  # the runtime's own mount points, made once
        before[spec.name] = box.image.files(skip=list(box.mounts))
        box.start(command)
        wait_until(lambda s=spec: probe_ok(s, "startup"), 120, 0.5, what=f"{spec.name} started")
    sidecar, serving = started["registry-sync"], started["serving"]
    wait_until(lambda: probe_ok(serving.spec, "readiness"), 60, 0.5, what="serving ready")

    for name, box in started.items():
        assert box.ids() == {(UID, GID)}, f"{name} runs as {box.ids()}"
        test = healthchecks[name]
        assert test[0] == "CMD" and box.run(test[1:]).returncode == 0, f"{name} HEALTHCHECK"
    public = f"http://127.0.0.1:{ports[8080]}/api/v1/predict"
    assert requests.post(public, json=SAMPLE, timeout=10).headers["X-Model-Version"] == "1.0.0"
    workers = {p.pid for p in buildah.contained(serving.runner)}

    local_registry.set_status(MODEL, "1.1.0", "Production")
    wait_until(lambda: requests.post(public, json=SAMPLE, timeout=5)
               .headers["X-Model-Version"] == "1.1.0", 60, 0.2, what="1.1.0 served")
    assert {p.pid for p in buildah.contained(serving.runner)} == workers, "serving restarted"

    for box in (serving, sidecar):  # the kubelet stops the main containers first
        code = buildah.stop(box.runner)
        assert code == 0, f"{box.spec.name} exited {code} on SIGTERM: {box.log.read_text()[-2000:]}"
    for name, box in started.items():
        after = box.image.files(skip=list(box.mounts))
        changed = sorted(p for p in before[name].keys() | after.keys()
                         if before[name].get(p) != after.get(p))
        assert not changed, f"{name} wrote outside its volumes: {changed[:10]}"
    logs = sidecar.log.read_text() + serving.log.read_text()
    assert TOKEN not in logs and local_registry.api_key not in logs
