"""k8s/monitoring/: the PodMonitor scrapes every process whose metrics an alert rule reads."""

from __future__ import annotations

from pathlib import Path

import kubernetes_validate
import yaml

from registry_sync.ops.metrics import SyncMetrics
from serving.telemetry import metrics as serving_metrics
from tests.support.alert_rules import OUR_METRIC, exported, rules

ROOT = Path(__file__).resolve().parents[2]
MONITORING = ROOT / "k8s" / "monitoring"
# Which container exports which metrics: the sidecar's registry, serving's (every worker's).
EXPORTED_BY = {"registry-sync": exported(SyncMetrics().registry),
               "serving": exported(serving_metrics.REGISTRY)}


def objects(kind: str, folder: Path) -> list[dict]:
    return [o for path in sorted(folder.glob("*.yaml"))
            for o in yaml.safe_load_all(path.read_text()) if o and o["kind"] == kind]


def deployment() -> dict:
    [found] = objects("Deployment", ROOT / "k8s")
    return found


def containers() -> dict[str, dict]:
    spec = deployment()["spec"]["template"]["spec"]
    return {c["name"]: c for c in [*spec.get("initContainers", []), *spec["containers"]]}


def env(container: dict) -> dict[str, str]:
    return {v["name"]: v.get("value") for v in container.get("env", [])}


def metrics_port(name: str, container: dict) -> int:
    """Where a container answers GET /metrics off its public port, from its own settings."""
    settings = env(container)
    if name == "serving":
        assert settings.get("ADMIN_PORT"), "serving without ADMIN_PORT has /metrics on 8080"
        return int(settings["METRICS_PORT"])
    return int(settings["SIDECAR_LISTEN"].rpartition(":")[2])


def scraped_containers() -> set[str]:
    """The containers whose metrics port a PodMonitor endpoint names, on the Deployment's pods."""
    pod_labels = deployment()["spec"]["template"]["metadata"]["labels"]
    scraped = set()
    for monitor in objects("PodMonitor", MONITORING):
        selector = monitor["spec"]["selector"]["matchLabels"]
        if not selector.items() <= pod_labels.items():
            continue
        names = {e["port"] for e in monitor["spec"]["podMetricsEndpoints"]
                 if e.get("path", "/metrics") == "/metrics"}
        for name, container in containers().items():
            ports = {p["name"]: p["containerPort"] for p in container.get("ports", [])}
            if any(ports.get(port) == metrics_port(name, container) for port in names):
                scraped.add(name)
    return scraped


def test_every_alert_rules_metric_is_exported_by_a_scraped_process():
    """A rule on a metric nobody scrapes never fires: each metric it names comes from a
    container the PodMonitor scrapes (on the port where that container serves /metrics)."""
    scraped = scraped_containers()
    for rule in rules():
        for metric in OUR_METRIC.findall(rule["expr"]):
            exporters = {name for name, names in EXPORTED_BY.items() if metric in names}
            assert exporters & scraped, f"{rule['alert']}: {metric} from {exporters}, " \
                                        f"scraped: {scraped}"


def test_both_processes_are_scraped_and_prometheus_may_reach_their_ports():
    """The NetworkPolicy of k8s/monitoring opens exactly the scraped ports to Prometheus."""
    assert scraped_containers() == set(EXPORTED_BY)
    [policy] = objects("NetworkPolicy", MONITORING)
    opened = {p["port"] for rule in policy["spec"]["ingress"] for p in rule["ports"]}
    assert opened == {metrics_port(n, c) for n, c in containers().items()}
    assert policy["spec"]["podSelector"] == deployment()["spec"]["selector"]


def test_serving_metrics_port_is_not_the_public_one():
    """The Service's target port is not where /metrics answers."""
    [service] = objects("Service", ROOT / "k8s")
    serving = containers()["serving"]
    public = {p["containerPort"] for p in serving["ports"] if p["name"] in
              {port["targetPort"] for port in service["spec"]["ports"]}}
    assert metrics_port("serving", serving) not in public


def test_the_monitoring_policy_is_a_valid_object():
    for policy in objects("NetworkPolicy", MONITORING):
        kubernetes_validate.validate(policy, "1.29.0", strict=True)
