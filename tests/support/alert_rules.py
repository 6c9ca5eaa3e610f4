"""The alert rules, the dashboard and the metrics they may name, as the tests read them."""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from prometheus_client import CollectorRegistry

from registry_sync.ops.metrics import SyncMetrics
from serving.telemetry import champion_metrics  # noqa: F401  (registers the champion's metrics)
from serving.telemetry import metrics as serving_metrics

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "docs" / "alerts" / "rules.yml"


RULE_TESTS = ROOT / "docs" / "alerts" / "rules_test.yml"
OPERATOR_RULES = ROOT / "k8s" / "monitoring" / "prometheusrule.yaml"


DASHBOARD = ROOT / "docs" / "grafana" / "comet-registry-sync.json"
RUNBOOK = ROOT / "docs" / "monitoring.md"


OUR_METRIC = re.compile(r"\b(?:serving|registry_sync)_[a-zA-Z0-9_:]+")
SUFFIXES = {"counter": ("_total", "_created"), "gauge": ("",), "info": ("_info",),
            "histogram": ("_bucket", "_count", "_sum", "_created"),
            "summary": ("_count", "_sum", "_created")}


PANEL_TYPES = {"timeseries", "state-timeline", "table", "stat", "gauge", "bargauge"}


def exported(registry: CollectorRegistry) -> set[str]:
    """Every sample name a registry can export, labelled metrics without samples included."""
    return {family.name + suffix for family in registry.collect()
            for suffix in SUFFIXES[family.type]}


EXPORTED = exported(serving_metrics.REGISTRY) | exported(SyncMetrics().registry)


def rules() -> list[dict]:
    return [rule for group in yaml.safe_load(RULES.read_text())["groups"]
            for rule in group["rules"]]
