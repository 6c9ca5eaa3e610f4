"""Alert rules and the dashboard: promtool accepts and tests them, and they name real metrics."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from registry_sync.ops.metrics import SyncMetrics
from tests.support.alert_rules import (
    DASHBOARD,
    EXPORTED,
    OPERATOR_RULES,
    OUR_METRIC,
    PANEL_TYPES,
    RULE_TESTS,
    RULES,
    RUNBOOK,
    rules,
)

promtool = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(promtool is None,
                                    reason="promtool missing: run `make system-deps`")


def dashboard_exprs() -> list[tuple[str, str]]:
    return [(panel["title"], target["expr"])
            for panel in json.loads(DASHBOARD.read_text())["panels"]
            for target in panel["targets"]]


def test_every_rule_and_panel_names_only_metrics_the_code_exports():
    """A renamed or removed metric fails here, not silently in production."""
    for where, expr in [(r["alert"], r["expr"]) for r in rules()] + dashboard_exprs():
        names = set(OUR_METRIC.findall(expr))
        assert names, f"{where}: names none of our metrics"
        assert names <= EXPORTED, f"{where}: {sorted(names - EXPORTED)} not exported"


def test_every_alert_has_a_summary_a_runbook_section_and_both_kinds_of_unit_test():
    runbook = RUNBOOK.read_text().lower()
    tests = yaml.safe_load(RULE_TESTS.read_text())["tests"]
    cases = [case for test in tests for case in test["alert_rule_test"]]
    for rule in rules():
        name = rule["alert"]
        assert rule["annotations"]["summary"] and rule["labels"]["severity"]
        assert rule["annotations"]["runbook"] == f"docs/monitoring.md#{name.lower()}"
        assert f"### {name.lower()}" in runbook, f"{name}: no runbook section"
        mine = [case for case in cases if case["alertname"] == name]
        assert any(case["exp_alerts"] for case in mine), f"{name}: no firing test"
        assert any(not case["exp_alerts"] for case in mine), f"{name}: no quiet test"


def test_the_operator_rule_holds_exactly_the_plain_rules():
    shipped = yaml.safe_load(OPERATOR_RULES.read_text())
    assert shipped["kind"] == "PrometheusRule"
    assert shipped["spec"] == yaml.safe_load(RULES.read_text())


@needs_promtool
def test_promtool_checks_and_unit_tests_the_rules():
    for command in (["check", "rules", str(RULES)], ["test", "rules", str(RULE_TESTS)]):
        done = subprocess.run([promtool, *command], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr


@needs_promtool
def test_the_dashboard_is_well_formed_and_its_queries_parse(tmp_path: Path):
    """Lint: unique ids, known panel types, the grid, the datasource variable; PromQL parses."""
    board = json.loads(DASHBOARD.read_text())
    assert board["uid"] and board["title"] and isinstance(board["schemaVersion"], int)
    variables = {v["name"] for v in board["templating"]["list"]}
    ids = [panel["id"] for panel in board["panels"]]
    assert len(ids) == len(set(ids))
    for panel in board["panels"]:
        assert panel["type"] in PANEL_TYPES, panel["title"]
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24 and grid["h"] > 0, panel["title"]
        assert panel["datasource"]["uid"].strip("${}") in variables
        refs = [target["refId"] for target in panel["targets"]]
        assert refs and len(refs) == len(set(refs)), panel["title"]
    recording = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"panel:{i}", "expr": expr} for i, (_, expr) in enumerate(dashboard_exprs())]}]}
    path = tmp_path / "dashboard_rules.yml"
    path.write_text(yaml.safe_dump(recording))
    done = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_sidecar_exports_its_poll_interval_for_the_not_syncing_alert():
    metrics = SyncMetrics(7.5)
    assert metrics.registry.get_sample_value("registry_sync_interval_seconds") == 7.5
