"""Labels only the caller who got the answer can send: signed ids, one version, a rate, a queue
of their own, and a bounded number of MPM instances (issue 23)."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from devkit.processes import wait_until
from devkit.snapshots import build_snapshot
from serving.config import MpmConfig, ServingConfig
from serving.http.app import create_app
from serving.inputs.schema import LABELS
from serving.model.predictions import classified
from serving.telemetry.mpm_events import LABEL_CLIENTS, Monitor
from serving.telemetry.prediction_ids import PredictionIds, key_from
from tests.support.diamonds import CLASSIFIER, VALID
from tests.support.mpm import DOWN, MODEL, FakeMpm, model_root


@pytest.fixture
def client_with(tmp_path: Path, trained_models):
    """A test client of an app serving 1.0.0 with these MPM settings (MPM itself down)."""
    root = model_root(tmp_path)
    build_snapshot(root, {CLASSIFIER: trained_models.pipeline}, "1.0.0")
    made = []

    def make(**mpm):
        made.append(create_app(ServingConfig(model_root=root, watch=False, reload_token="t",
                                             isolate_validation=False, validation_wait=60.0,
                                             validation_dir=tmp_path / "verdicts",
                                             mpm=MpmConfig(**{**vars(DOWN), **mpm}))))
        return made[-1].test_client()

    yield make
    for app in made:
        app.extensions["serving.swap.holder"].stop()
        app.extensions["serving.monitor"].stop(timeout=1)


def test_a_label_needs_an_id_this_service_issued_for_that_version(client_with):
    """A made-up id, or a real id moved to another version: 400 naming prediction_id; the real
    id with its version (given or not, batch row or not): 202."""
    client = client_with()
    answer = client.post("/api/v1/predict", json=VALID).get_json()
    real, label = answer["prediction_id"], answer["label"]
    for body in ({"prediction_id": "0" * 32, "label": label},
                 {"prediction_id": real, "label": label, "version": "9.9.9"},
                 {"prediction_id": real[:31] + ("0" if real[31] != "0" else "1"), "label": label}):
        refused = client.post("/api/v1/labels", json=body)
        assert refused.status_code == 400, body
        [error] = refused.get_json()["errors"]
        assert error["field"] == "prediction_id"
        assert error["message"].startswith("was not issued by this service for version")
    for body in ({"prediction_id": real, "label": label},
                 {"prediction_id": real + "-0", "label": label, "version": "1.0.0"}):
        accepted = client.post("/api/v1/labels", json=body)
        assert accepted.status_code == 202 and accepted.get_json()["version"] == "1.0.0"


def test_a_label_with_many_unknown_keys_names_a_bounded_number_of_them(client_with):
    """20,000 unknown keys: a 400 naming at most 100 of them, not an answer as big as the body."""
    client = client_with()
    body = {f"k{i}": 0 for i in range(20_000)}
    refused = client.post("/api/v1/labels", json=body)
    assert refused.status_code == 400
    assert 0 < len(refused.get_json()["errors"]) <= 100 + 3  # and the three fields named
    assert len(refused.data) < 20_000


def test_labels_past_the_rate_are_refused_with_429(client_with):
    """LABELS_PER_SECOND accepted in a second; the next: 429 with Retry-After, then room again."""
    client = client_with(labels_per_second=3)
    answer = client.post("/api/v1/predict", json=VALID).get_json()
    body = {"prediction_id": answer["prediction_id"], "label": answer["label"]}
    statuses = [client.post("/api/v1/labels", json=body) for _ in range(5)]
    assert [r.status_code for r in statuses[:3]] == [202] * 3
    assert statuses[3].status_code == 429 and statuses[3].headers["Retry-After"] == "1"
    assert "LABELS_PER_SECOND=3" in statuses[3].get_json()["message"]
    time.sleep(1.05)
    assert client.post("/api/v1/labels", json=body).status_code == 202


def test_an_id_expires_after_the_max_age_and_the_key_follows_the_token():
    """Older than LABELS_MAX_AGE: refused, saying so; another token's key verifies nothing."""
    now = [1_000_000.0]
    ids = PredictionIds(key_from("token-a"), max_age=60, clock=lambda: now[0])
    issued = ids.issue("1.0.0")
    assert ids.refusal(issued, "1.0.0") is None
    assert PredictionIds(key_from("token-a"), 60).refusal(issued, "1.0.0") is not None  # aged
    assert PredictionIds(key_from("token-b"), 60, lambda: now[0]).refusal(issued, "1.0.0")
    now[0] += 61
    assert ids.refusal(issued, "1.0.0") == "is older than LABELS_MAX_AGE (60 s)"


def test_labels_never_starve_events_and_open_a_bounded_number_of_instances(tmp_path: Path):
    """Labels for many versions while events flow: every event is sent, at most LABEL_CLIENTS
    label-only instances stay open (the others ended), labels wait on their own queue."""
    gate = threading.Event()
    gate.set()
    opened: list[FakeMpm] = []

    def open_client(key):
        opened.append(FakeMpm(key, gate))
        return opened[-1]

    monitor = Monitor(MpmConfig(enabled=True, api_key="k", workspace="ws", labels_queue_size=50),
                      tmp_path, open_client=open_client, draw=lambda: 0.0)
    for i in range(40):
        monitor.record(MODEL, f"e{i}", [{"carat": 1}], classified(["Gold"], [0.9], LABELS),
                       batch=False)
        version = f"0.{i % 8}.0"
        monitor.record_label(SimpleNamespace(**{**vars(MODEL), "version": version}),
                             f"l{i}", "Gold")
    served = lambda: [c for c in opened if c.key.version == MODEL.version]  # noqa: E731
    wait_until(lambda: served() and len(served()[0].events) == 40, timeout=20)
    wait_until(lambda: sum(len(c.labels) for c in opened) == 40, timeout=20)
    wait_until(lambda: sum(not c.ended for c in opened) <= 1 + LABEL_CLIENTS, timeout=20)
    monitor.stop()
