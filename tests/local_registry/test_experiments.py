"""Experiment metrics: written the way comet_ml 3.58.8 writes them, read back, refused when bad."""

from __future__ import annotations

from devkit.registry import run_sdk_script

SCENARIO = r"""
import json
import comet_ml

client = comet_ml.API()._client  # the SDK's own REST connection: its paths and bodies
client.log_experiment_metric("exp0123abcd", "live_agreement_with_champion", 0.97, step=12)
client.log_experiment_metric("exp0123abcd", "live_agreement_with_champion", 0.95, step=40)
print(json.dumps({"metric": client.get_experiment_metric("exp0123abcd",
                                                          "live_agreement_with_champion"),
                  "summary": client.get_experiment_metrics_summaries("exp0123abcd")}))
"""


def test_the_sdk_logs_experiment_metrics_and_reads_them_back(local_registry, tmp_path):
    seen = run_sdk_script(local_registry, SCENARIO, tmp_path / "home")
    values = [(p["metricValue"], p["step"]) for p in seen["metric"]["metrics"]]
    assert values == [(0.97, 12), (0.95, 40)]
    (summary,) = seen["summary"]["values"]
    assert summary["name"] == "live_agreement_with_champion"
    assert (summary["valueCurrent"], summary["stepCurrent"]) == (0.95, 40)
    assert (summary["valueMin"], summary["valueMax"]) == (0.95, 0.97)


def test_a_malformed_metric_is_refused_naming_the_field(local_registry):
    for body, field in (({"metricName": "m", "metricValue": 1}, "experimentKey"),
                        ({"experimentKey": "e1", "metricName": "m", "metricValue": [1]},
                         "metricValue"),
                        ({"experimentKey": "e1", "metricName": "m", "metricValue": 1,
                          "step": "x"}, "step")):
        answer = local_registry.post("write/experiment/metric", body)
        assert answer.status_code == 400 and field in answer.json()["msg"]
