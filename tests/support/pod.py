"""The pod of k8s/deployment.yaml as local processes: each container's exact command and env.

`load(root)` resolves the Deployment's containers the way the kubelet would — env and envFrom
from the ConfigMap and the Secret, Downward API fields, `$(VAR)` references — and gives every
volume a directory under `root`: emptyDirs are created empty, Secret and Downward API volumes
are written as files. Every mount path in an env value or an argument (MODEL_ROOT=/models,
RELOAD_TOKEN_FILE=/var/run/secrets/comet/reload-token, ...) is rewritten to its local directory,
so two containers mounting the same volume share one directory, as in the pod. `ports` remaps
container ports (8080, 8081, 8090) to free local ones wherever they appear. A test can then start
`container.local_argv()` with `container.env` on loopback, native sidecars first (`pod.containers`
is in start order), and wait on `container.probes["startup"]`.
"""

from __future__ import annotations

import base64
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
K8S_DIR = REPO_ROOT / "k8s"
DEFAULT_UID = "00000000-0000-4000-8000-000000000001"
_REFERENCE = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)|\$\$")


@dataclass(frozen=True)
class Container:
    """One container of the pod, resolved for a local run."""

    name: str
    image: str
    argv: list[str]  # command + args exactly as the manifest gives them (after path mapping)
    env: dict[str, str]  # only the pod's variables: merge with os.environ to run it
    mounts: dict[str, Path]  # mountPath -> local directory
    sidecar: bool  # an init container with restartPolicy: Always
    probes: dict[str, tuple[str, int]] = field(default_factory=dict)  # kind -> (path, port)

    def local_argv(self) -> list[str]:
        """argv runnable from the test's venv: `python` and `registry-sync` run this interpreter."""
        program, *rest = self.argv
        if program in ("python", "python3"):
            return [sys.executable, *rest]
        if program == "registry-sync":
            return [sys.executable, "-m", "registry_sync.cli", *rest]
        return list(self.argv)


@dataclass(frozen=True)
class Pod:
    """The resolved pod: its containers in start order and where its volumes live."""

    root: Path
    containers: tuple[Container, ...]
    volumes: dict[str, Path]

    def __getitem__(self, name: str) -> Container:
        """The container with this name."""
        for container in self.containers:
            if container.name == name:
                return container
        raise KeyError(name)


def documents(k8s_dir: Path = K8S_DIR) -> list[dict[str, Any]]:
    """Every object of the manifests that `kubectl create -f k8s_dir` would create."""
    found = []
    for path in sorted(k8s_dir.iterdir()):
        if path.suffix in (".yaml", ".yml", ".json"):
            found += [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]
    return found


def load(
    root: Path,
    *,
    pod_name: str = "comet-registry-sync-local",
    namespace: str = "default",
    uid: str = DEFAULT_UID,
    secrets: Mapping[str, str] | None = None,
    config: Mapping[str, str] | None = None,
    ports: Mapping[int, int] | None = None,
    k8s_dir: Path = K8S_DIR,
) -> Pod:
    """Resolve the Deployment's pod under root; secrets/config override Secret/ConfigMap keys."""
    objects = documents(k8s_dir)
    deployment = _only(objects, "Deployment")
    config_maps = {o["metadata"]["name"]: dict(o.get("data") or {})
                   for o in objects if o["kind"] == "ConfigMap"}
    for data in config_maps.values():
        data.update({k: v for k, v in (config or {}).items() if k in data})
    secret_maps = {o["metadata"]["name"]: _secret_data(o, secrets or {})
                   for o in objects if o["kind"] == "Secret"}
    fields = {"metadata.name": pod_name, "metadata.namespace": namespace, "metadata.uid": uid,
              "spec.nodeName": "localhost", "status.podIP": "127.0.0.1",
              "status.hostIP": "127.0.0.1",
              "spec.serviceAccountName": deployment["spec"]["template"]["spec"].get(
                  "serviceAccountName", "default")}
    spec = deployment["spec"]["template"]["spec"]
    sources = _Sources(config_maps, secret_maps, fields, dict(ports or {}))
    volumes = {v["name"]: _materialize(v, root / "volumes" / v["name"], sources)
               for v in spec.get("volumes", [])}
    sidecars = [c for c in spec.get("initContainers", []) if c.get("restartPolicy") == "Always"]
    if len(sidecars) != len(spec.get("initContainers", [])):
        raise ValueError("only native sidecars are supported among init containers")
    containers = [_container(c, True, volumes, sources) for c in sidecars]
    containers += [_container(c, False, volumes, sources) for c in spec["containers"]]
    return Pod(root, tuple(containers), volumes)


@dataclass(frozen=True)
class _Sources:
    config_maps: dict[str, dict[str, str]]
    secrets: dict[str, dict[str, str]]
    fields: dict[str, str]
    ports: dict[int, int]


def _only(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    matching = [o for o in objects if o["kind"] == kind]
    if len(matching) != 1:
        raise ValueError(f"expected one {kind}, found {len(matching)}")
    return matching[0]


def _secret_data(secret: dict[str, Any], overrides: Mapping[str, str]) -> dict[str, str]:
    data = {k: base64.b64decode(v).decode() for k, v in (secret.get("data") or {}).items()}
    data.update(secret.get("stringData") or {})
    data.update({k: v for k, v in overrides.items() if k in data})
    return data


def _lookup(store: dict[str, dict[str, str]], ref: dict[str, Any], what: str) -> str | None:
    value = store.get(ref["name"], {}).get(ref["key"])
    if value is None and not ref.get("optional"):
        raise KeyError(f"{what} {ref['name']}/{ref['key']} does not exist")
    return value


def _write(path: Path, text: str, mode: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    path.chmod(mode | 0o600)  # keep the owner able to read it back and delete it


def _materialize(volume: dict[str, Any], where: Path, sources: _Sources) -> Path:
    """Create a volume's local directory with the files the kubelet would put there."""
    where.mkdir(parents=True, exist_ok=True)
    if "secret" in volume:
        _project(volume["secret"], sources.secrets[volume["secret"]["secretName"]], where,
                 volume["secret"].get("defaultMode", 0o644))
    elif "configMap" in volume:
        _project(volume["configMap"], sources.config_maps.get(volume["configMap"]["name"], {}),
                 where, volume["configMap"].get("defaultMode", 0o644))
    elif "projected" in volume:
        mode = volume["projected"].get("defaultMode", 0o644)
        for source in volume["projected"]["sources"]:
            for item in source.get("downwardAPI", {}).get("items", []):
                _write(where / item["path"], sources.fields[item["fieldRef"]["fieldPath"]], mode)
            # A service-account token and the cluster CA do not exist outside a cluster: the
            # sidecar then sees no token and keeps its Kubernetes reporting off.
    elif "emptyDir" not in volume:
        raise ValueError(f"volume {volume['name']}: unsupported type")
    return where


def _project(source: dict[str, Any], data: dict[str, str], where: Path, mode: int) -> None:
    items = source.get("items") or [{"key": k, "path": k} for k in data]
    for item in items:
        _write(where / item["path"], data[item["key"]], item.get("mode", mode))


def _container(spec: dict[str, Any], sidecar: bool, volumes: dict[str, Path],
               sources: _Sources) -> Container:
    mounts = {}
    for mount in spec.get("volumeMounts", []):
        local = volumes[mount["name"]] / mount.get("subPath", "")
        mounts[mount["mountPath"].rstrip("/")] = local
    env = _environment(spec, sources)
    env = {k: _remap_ports(_map_paths(v, mounts), sources.ports) for k, v in env.items()}
    argv = [_expand(a, env) for a in [*spec.get("command", []), *spec.get("args", [])]]
    named = {p["name"]: p["containerPort"] for p in spec.get("ports", []) if "name" in p}
    probes = {}
    for kind in ("startup", "readiness", "liveness"):
        probe = spec.get(f"{kind}Probe", {}).get("httpGet")
        if probe:
            port = named.get(probe["port"], probe["port"])
            probes[kind] = (probe["path"], sources.ports.get(int(port), int(port)))
    return Container(
        name=spec["name"], image=spec["image"],
        argv=[_map_paths(a, mounts) for a in argv], env=env, mounts=mounts,
        sidecar=sidecar, probes=probes,
    )


def _environment(spec: dict[str, Any], sources: _Sources) -> dict[str, str]:
    """envFrom, then env (which wins), with $(VAR) references to earlier variables expanded."""
    env: dict[str, str] = {}
    for source in spec.get("envFrom", []):
        prefix = source.get("prefix", "")
        if "configMapRef" in source:
            data = sources.config_maps.get(source["configMapRef"]["name"], {})
        else:
            data = sources.secrets.get(source["secretRef"]["name"], {})
        env.update({prefix + k: v for k, v in data.items()})
    for var in spec.get("env", []):
        value = _value(var, sources)
        if value is not None:
            env[var["name"]] = _expand(value, env) if "valueFrom" not in var else value
    return env


def _value(var: dict[str, Any], sources: _Sources) -> str | None:
    if "valueFrom" not in var:
        return str(var.get("value", ""))
    source = var["valueFrom"]
    if "configMapKeyRef" in source:
        return _lookup(sources.config_maps, source["configMapKeyRef"], "ConfigMap key")
    if "secretKeyRef" in source:
        return _lookup(sources.secrets, source["secretKeyRef"], "Secret key")
    if "fieldRef" in source:
        return sources.fields[source["fieldRef"]["fieldPath"]]
    raise ValueError(f"{var['name']}: unsupported valueFrom {sorted(source)}")


def _expand(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes' $(VAR) expansion: known variables are replaced, $$ escapes a dollar."""

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        return env.get(match.group(1), match.group(0))

    return _REFERENCE.sub(replace, text)


def _map_paths(value: str, mounts: Mapping[str, Path]) -> str:
    """Rewrite a value naming a path under a mount to the mount's local directory."""
    for mount_path in sorted(mounts, key=len, reverse=True):
        if value == mount_path or value.startswith(mount_path + "/"):
            return str(mounts[mount_path]) + value[len(mount_path):]
    return value


def _remap_ports(value: str, ports: Mapping[int, int]) -> str:
    """Replace a container port in a value that is the port or ends with :port."""
    for old, new in ports.items():
        if value == str(old):
            return str(new)
        value = re.sub(rf":{old}(?=$|/)", f":{new}", value)
    return value
