"""The MPM sender and the labels endpoint, in process: sampling, bounds, versions, refusals."""

from __future__ import annotations

import threading
from pathlib import Path
from types import SimpleNamespace

import pytest

from devkit.processes import wait_until
from devkit.snapshots import build_snapshot
from serving.config import MpmConfig, ServingConfig, from_env
from serving.errors import ConfigError
from serving.http.app import create_app
from serving.inputs.schema import LABELS
from serving.model.predictions import classified
from serving.telemetry import metrics
from serving.telemetry.mpm_events import Monitor
from serving.telemetry.mpm_sdk import mpm_root
from tests.support.diamonds import CLASSIFIER, VALID
from tests.support.mpm import DOWN, MODEL, FakeMpm, model_root


def fake_monitor(tmp_path: Path, gate: threading.Event, **config) -> tuple[Monitor, list]:
    opened: list[FakeMpm] = []

    def open_client(key):
        opened.append(FakeMpm(key, gate))
        return opened[-1]

    settings = MpmConfig(enabled=True, api_key="k", workspace="ws", **config)
    return Monitor(settings, tmp_path, open_client=open_client, draw=iter([0.1, 0.9] * 50)
                   .__next__), opened


def dropped(reason: str) -> float:
    return metrics.REGISTRY.get_sample_value("serving_mpm_events_dropped_total",
                                             {"reason": reason}) or 0.0


def test_a_new_version_opens_a_new_instance_and_ends_the_old_one(tmp_path: Path):
    """The SDK fixes the version per instance: a hot swap ends the old one, opens the next."""
    gate = threading.Event()
    gate.set()
    monitor, opened = fake_monitor(tmp_path, gate, sample_rate=0.5)
    for version in ("1.0.0", "1.0.0", "2.0.0", "2.0.0"):  # draws 0.1 / 0.9: every other one
        monitor.record(SimpleNamespace(**{**vars(MODEL), "version": version}), version,
                       [{"carat": 1}], classified(["Gold"], [0.9], LABELS), batch=False)
    wait_until(lambda: len(opened) == 2 and opened[1].events, timeout=10)
    assert [(c.key.workspace, c.key.name, c.key.version) for c in opened] == [
        ("ws", "clf", "1.0.0"), ("ws", "clf", "2.0.0")]
    assert opened[0].events == ["1.0.0"] and opened[1].events == ["2.0.0"]
    wait_until(lambda: opened[0].ended, timeout=10)
    monitor.stop()
    assert opened[1].ended


def test_a_full_queue_drops_and_counts_without_blocking(tmp_path: Path):
    """While the sender is stuck, the labels queue holds its size; the rest are dropped."""
    gate = threading.Event()
    monitor, _ = fake_monitor(tmp_path, gate, labels_queue_size=2)
    before = dropped("queue_full")
    accepted = [monitor.record_label(MODEL, f"{i:032x}", "Gold") for i in range(6)]
    assert accepted.count(False) >= 3
    assert dropped("queue_full") - before == accepted.count(False)
    gate.set()


def test_config_requires_a_key_when_enabled_and_checks_the_rate(tmp_path: Path):
    with pytest.raises(ConfigError, match="COMET_API_KEY"):
        from_env({"MODEL_ROOT": str(tmp_path), "MPM_ENABLED": "true"})
    with pytest.raises(ConfigError, match="MPM_SAMPLE_RATE is '2'"):
        from_env({"MODEL_ROOT": str(tmp_path), "MPM_SAMPLE_RATE": "2"})
    assert from_env({"MODEL_ROOT": str(tmp_path)}).mpm.enabled is False
    assert mpm_root(MpmConfig(url="http://127.0.0.1:5/clientlib/")) == "http://127.0.0.1:5/mpm/"


@pytest.fixture
def app_with(tmp_path: Path, trained_models):
    root = model_root(tmp_path)
    build_snapshot(root, {CLASSIFIER: trained_models.pipeline}, "1.0.0")
    made = []

    def make(mpm: MpmConfig):
        made.append(create_app(ServingConfig(model_root=root, watch=False, mpm=mpm,
                                             validation_wait=60.0)))
        return made[-1].test_client()

    yield make
    for app in made:
        app.extensions["serving.swap.holder"].stop()
        app.extensions["serving.monitor"].stop(timeout=1)


def test_labels_are_refused_by_name_and_forwarded_when_valid(app_with):
    """Wrong fields are a 400 naming each; a valid label is 202 even while MPM is down."""
    client = app_with(DOWN)
    answer = client.post("/api/v1/predict", json=VALID)
    prediction_id = answer.get_json()["prediction_id"]
    assert answer.headers["X-Prediction-Id"] == prediction_id and len(prediction_id) == 32
    bad = client.post("/api/v1/labels", json={"prediction_id": "../x", "label": "Nope",
                                              "version": "1 0", "extra": 1})
    assert bad.status_code == 400
    assert {e["field"] for e in bad.get_json()["errors"]} == {
        "prediction_id", "label", "version", "extra"}
    ok = client.post("/api/v1/labels", json={"prediction_id": prediction_id + "-3",
                                             "label": answer.get_json()["label"]})
    assert ok.status_code == 202 and ok.get_json()["version"] == "1.0.0"


def test_with_mpm_off_the_labels_endpoint_says_so(app_with):
    client = app_with(MpmConfig())
    answer = client.post("/api/v1/labels", json={"prediction_id": "0" * 32, "label": "Gold"})
    assert answer.status_code == 404 and answer.get_json()["error"] == "monitoring_off"
    assert "prediction_id" in client.post("/api/v1/predict", json=VALID).get_json()
