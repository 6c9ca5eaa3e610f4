"""k8s/: valid against the official schemas, offline, and keeping the promises of the design."""

from __future__ import annotations

from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from tests.support import pod

K8S_DIR = pod.K8S_DIR
# 1.29 is the first release with native sidecars on by default; the latest bundled schema too.
VERSIONS = ["1.29.0", kubernetes_validate.latest_version()]
OBJECTS = pod.documents()
APP = "comet-registry-sync"


def one(kind: str) -> dict:
    """The single object of a kind."""
    matching = [o for o in OBJECTS if o["kind"] == kind]
    assert len(matching) == 1, f"expected one {kind}, found {len(matching)}"
    return matching[0]


def pod_spec() -> dict:
    """The Deployment's pod template spec."""
    return one("Deployment")["spec"]["template"]["spec"]


def all_containers() -> list[dict]:
    """Init containers (the native sidecar) and containers."""
    return [*pod_spec().get("initContainers", []), *pod_spec()["containers"]]


def container(name: str) -> dict:
    """The container of the pod with this name."""
    return next(c for c in all_containers() if c["name"] == name)


def env_names(spec: dict) -> set[str]:
    """The variables a container sets explicitly."""
    return {v["name"] for v in spec.get("env", [])}


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("obj", OBJECTS, ids=lambda o: f"{o['kind']}/{o['metadata']['name']}")
def test_every_object_validates_strictly_against_the_official_schema(obj, version):
    """No unknown fields, no wrong types: what `kubectl create` would accept."""
    kubernetes_validate.validate(obj, version, strict=True)


def test_kubectl_create_reads_only_objects_and_kustomize_builds_the_same_set():
    """`create -f k8s/` reads *.yaml/*.yml/*.json; `Kustomization` lists exactly those files."""
    manifests = sorted(p.name for p in K8S_DIR.iterdir() if p.suffix in (".yaml", ".yml", ".json"))
    for name in manifests:
        for obj in yaml.safe_load_all((K8S_DIR / name).read_text()):
            assert obj["apiVersion"] and obj["kind"] != "Kustomization", name
            assert "namespace" not in obj["metadata"], f"{name}: let -n / kustomize choose"
    kustomization = yaml.safe_load((K8S_DIR / "Kustomization").read_text())
    assert kustomization["kind"] == "Kustomization"
    assert sorted(kustomization["resources"]) == manifests
    assert not (K8S_DIR / "kustomization.yaml").exists()
    assert not (K8S_DIR / "kustomization.yml").exists()


def test_the_sidecar_is_native_and_its_startup_probe_waits_for_the_first_sync():
    """An init container with restartPolicy Always whose startup probe is /readyz."""
    (sidecar,) = pod_spec()["initContainers"]
    assert sidecar["name"] == "registry-sync"
    assert sidecar["restartPolicy"] == "Always"
    assert sidecar["command"] + sidecar["args"] == ["registry-sync", "run"]
    assert sidecar["startupProbe"]["httpGet"]["path"] == "/readyz"
    assert sidecar["livenessProbe"]["httpGet"]["path"] == "/healthz"
    probe = sidecar["startupProbe"]
    assert probe["periodSeconds"] * probe["failureThreshold"] >= 120, "room for a first download"
    env = {v["name"]: v.get("value") for v in sidecar["env"]}
    assert env["SIDECAR_LISTEN"] == "0.0.0.0:8090", "the kubelet probes the pod IP"
    assert sidecar["ports"][0]["containerPort"] == 8090


def test_serving_runs_its_front_with_probes_on_its_public_port():
    """The granian front (`python -m serving.front`); readiness /readyz, liveness /healthz, 8080."""
    serving = container("serving")
    assert serving["command"] == ["python", "-m", "serving.front"]
    assert serving["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert serving["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert serving["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"},
                                {"name": "metrics", "containerPort": 8082, "protocol": "TCP"}]


def test_replicas_spread_over_nodes_and_zones_without_blocking_a_small_cluster():
    """Two replicas on one node die together: spread by node and zone, ScheduleAnyway."""
    spec = pod_spec()
    labels = one("Deployment")["spec"]["selector"]["matchLabels"]
    spread = {c["topologyKey"]: c for c in spec["topologySpreadConstraints"]}
    assert set(spread) == {"kubernetes.io/hostname", "topology.kubernetes.io/zone"}
    for constraint in spread.values():
        assert constraint["labelSelector"] == {"matchLabels": labels}
        assert constraint["maxSkew"] == 1
        assert constraint["whenUnsatisfiable"] == "ScheduleAnyway"


def test_every_container_is_locked_down():
    """Non-root fixed UID, read-only root, no privilege escalation, no capabilities, seccomp."""
    pod_security = pod_spec()["securityContext"]
    assert pod_security["runAsNonRoot"] is True
    assert (pod_security["runAsUser"], pod_security["runAsGroup"]) == (10001, 10001)
    assert pod_security["fsGroup"] == 10001
    assert pod_security["seccompProfile"] == {"type": "RuntimeDefault"}
    for spec in all_containers():
        security = spec["securityContext"]
        assert security["runAsNonRoot"] is True, spec["name"]
        assert security["runAsUser"] == 10001, spec["name"]
        assert security["readOnlyRootFilesystem"] is True, spec["name"]
        assert security["allowPrivilegeEscalation"] is False, spec["name"]
        assert security["capabilities"] == {"drop": ["ALL"]}, spec["name"]
        assert security["seccompProfile"] == {"type": "RuntimeDefault"}, spec["name"]
        assert {"cpu", "memory"} <= set(spec["resources"]["requests"]), spec["name"]
        assert {"cpu", "memory"} <= set(spec["resources"]["limits"]), spec["name"]


def test_both_containers_share_model_root_on_a_bounded_empty_dir():
    """The sidecar writes /models, serving reads it, and the volume has a sizeLimit."""
    volumes = {v["name"]: v for v in pod_spec()["volumes"]}
    assert volumes["models"]["emptyDir"]["sizeLimit"]
    sidecar_mounts = {m["mountPath"]: m for m in container("registry-sync")["volumeMounts"]}
    serving_mounts = {m["mountPath"]: m for m in container("serving")["volumeMounts"]}
    assert sidecar_mounts["/models"]["name"] == serving_mounts["/models"]["name"] == "models"
    assert not sidecar_mounts["/models"].get("readOnly")
    assert serving_mounts["/models"]["readOnly"] is True
    for spec in all_containers():
        mounts = {m["mountPath"] for m in spec["volumeMounts"]}
        assert "/tmp" in mounts, f"{spec['name']}: a writable /tmp on a read-only root"
    for volume in volumes.values():
        if "emptyDir" in volume:
            assert volume["emptyDir"].get("sizeLimit"), volume["name"]


def test_the_secret_reaches_both_containers_as_files_and_the_api_key_only_the_sidecar():
    """Both mount comet-secrets; serving gets the reload token alone, the sidecar the decision
    key too."""
    secret = one("Secret")
    assert secret["metadata"]["name"] == "comet-secrets"
    assert set(secret["stringData"]) == {"api-key", "reload-token", "decision-key"}
    volumes = {v["name"]: v for v in pod_spec()["volumes"]}

    def secret_keys(spec: dict) -> set[str]:
        keys = set()
        for mount in spec["volumeMounts"]:
            source = volumes[mount["name"]].get("secret")
            if source and source["secretName"] == "comet-secrets":
                keys |= {item["key"] for item in source["items"]}
        return keys

    assert secret_keys(container("registry-sync")) == {"api-key", "reload-token", "decision-key"}
    assert "DECISION_KEY_FILE" in env_names(container("registry-sync"))
    assert secret_keys(container("serving")) == {"reload-token"}
    for spec in all_containers():
        assert "COMET_API_KEY" not in env_names(spec), "the key comes from a file, rotatable"
        assert "RELOAD_TOKEN_FILE" in env_names(spec)


def test_the_sidecar_knows_its_pod_through_the_downward_api_and_alone_holds_a_token():
    """POD_NAME/POD_NAMESPACE/POD_UID; the API token is projected into the sidecar only."""
    fields = {v["name"]: v["valueFrom"]["fieldRef"]["fieldPath"]
              for v in container("registry-sync")["env"] if "fieldRef" in v.get("valueFrom", {})}
    assert fields == {"POD_NAME": "metadata.name", "POD_NAMESPACE": "metadata.namespace",
                      "POD_UID": "metadata.uid", "POD_IP": "status.podIP"}
    spec = pod_spec()
    assert spec["serviceAccountName"] == one("ServiceAccount")["metadata"]["name"]
    assert spec["automountServiceAccountToken"] is False
    token_dir = "/var/run/secrets/kubernetes.io/serviceaccount"
    assert token_dir in {m["mountPath"] for m in container("registry-sync")["volumeMounts"]}
    assert token_dir not in {m["mountPath"] for m in container("serving")["volumeMounts"]}


def test_the_role_allows_events_pod_annotations_and_one_lease_only():
    """create/patch Events, get/patch Pods; create Leases, get/update/watch the one by name."""
    rules = {(tuple(r["apiGroups"]), tuple(r["resources"]), tuple(r.get("resourceNames", ()))):
             set(r["verbs"]) for r in one("Role")["rules"]}
    assert rules == {(("",), ("events",), ()): {"create", "patch"},
                     (("",), ("pods",), ()): {"get", "patch"},
                     (("coordination.k8s.io",), ("leases",), ()): {"create"},
                     (("coordination.k8s.io",), ("leases",), ("comet-registry-sync",)):
                         {"get", "update", "watch"}}
    binding = one("RoleBinding")
    assert binding["roleRef"]["name"] == one("Role")["metadata"]["name"]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "registry-sync"}]
    assert not [o for o in OBJECTS if o["kind"] in ("ClusterRole", "ClusterRoleBinding")]


def test_the_load_balancer_exposes_serving_only():
    """Port 80 to the container port named http (8080); nothing else is exposed."""
    service = one("Service")
    assert service["spec"]["type"] == "LoadBalancer"
    assert service["spec"]["ports"] == [
        {"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}]
    assert service["spec"]["selector"] == one("Deployment")["spec"]["selector"]["matchLabels"]
    assert service["spec"]["selector"] == {"app.kubernetes.io/name": APP}


def test_the_webhook_reaches_serving_only_over_tls_on_its_one_path():
    """The Ingress routes exactly /api/v1/webhooks/comet to serving, for a host it has TLS for."""
    ingress = one("Ingress")["spec"]
    (rule,) = ingress["rules"]
    assert rule["host"] in {h for t in ingress["tls"] for h in t["hosts"]}
    assert all(t["secretName"] for t in ingress["tls"])
    (path,) = rule["http"]["paths"]
    assert (path["path"], path["pathType"]) == ("/api/v1/webhooks/comet", "Exact")
    assert path["backend"]["service"] == {"name": one("Service")["metadata"]["name"],
                                          "port": {"name": "http"}}


def test_a_disruption_budget_keeps_a_replica_serving():
    """The PDB selects the Deployment's pods and keeps at least one of its replicas."""
    pdb = one("PodDisruptionBudget")
    deployment = one("Deployment")
    assert pdb["spec"]["selector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]
    assert 1 <= pdb["spec"]["minAvailable"] < deployment["spec"]["replicas"]
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0


def test_configmap_keys_referenced_by_the_deployment_exist(tmp_path: Path):
    """Every configMapKeyRef resolves, so no pod waits in CreateContainerConfigError."""
    config_map = one("ConfigMap")
    for spec in all_containers():
        for var in spec["env"]:
            ref = var.get("valueFrom", {}).get("configMapKeyRef")
            if ref:
                assert ref["name"] == config_map["metadata"]["name"], var["name"]
                assert ref["key"] in config_map["data"], var["name"]
    assert pod.load(tmp_path).containers  # and the pod resolves as a whole


def test_only_the_deployments_pods_reach_the_sidecar_port():
    """The NetworkPolicy opens 8080 to all and 8090 (peer files) to the Deployment's pods only."""
    policy = one("NetworkPolicy")
    labels = one("Deployment")["spec"]["selector"]["matchLabels"]
    assert policy["spec"]["podSelector"]["matchLabels"] == labels
    public, peers = policy["spec"]["ingress"]
    assert "from" not in public and public["ports"] == [{"port": 8080, "protocol": "TCP"}]
    assert peers["from"] == [{"podSelector": {"matchLabels": labels}}]
    assert peers["ports"] == [{"port": 8090, "protocol": "TCP"}]
