"""PREDICT_TIMEOUT on every model call: a model that hangs on some inputs costs only those inputs.

Real apps on real snapshots: the hanging model is our pickled pipeline wrapped so that rows with
carat 0.317 never return (devkit.models.hanging), which passes validation (its golden
rows answer). The apps run in this test's main thread, where the alarm stops the call (other
tests' apps get a deadline of minutes: tests.serving.conftest).
"""

from __future__ import annotations

import dataclasses
import json
import time

from prometheus_client.parser import text_string_to_metric_families

from devkit.models import HANGING_CARAT, hanging
from devkit.snapshots import build_snapshot
from serving.config import ChallengerConfig
from serving.model.loader import MAX_METADATA_BYTES
from tests.serving.test_challenger import KEY_HEADER, settle, stage_candidate
from tests.support.diamonds import AUTH, CLASSIFIER, VALID

BAD = {**VALID, "carat": HANGING_CARAT}
TIMEOUT = 2.0  # generous: in tests scikit-learn runs OpenMP threads on a busy machine


def overruns(client, role: str) -> float:
    """serving_prediction_overruns_total of a role, all versions."""
    return sum(s.value for f in text_string_to_metric_families(
        client.get("/metrics").get_data(as_text=True)) for s in f.samples
        if s.name == "serving_prediction_overruns_total" and s.labels["role"] == role)


def test_a_champion_hanging_on_one_row_answers_504_for_it_and_200_for_the_others(
        make_app, model_root, trained_models, tmp_path):
    build_snapshot(model_root, {CLASSIFIER: hanging(trained_models.pickled, tmp_path / "h")},
                   "1.0.0")
    client = make_app(predict_timeout=TIMEOUT).test_client()
    assert client.post("/api/v1/predict", json=VALID).status_code == 200
    assert client.get("/api/v1/model").get_json()["roles"]["champion_overrun"] is None
    started = time.monotonic()
    refused = client.post("/api/v1/predict", json={"instances": [VALID, BAD]})
    assert time.monotonic() - started < TIMEOUT + 2
    assert refused.status_code == 504
    body = refused.get_json()
    assert body["error"] == "prediction_timeout"
    assert f"PREDICT_TIMEOUT={TIMEOUT:g}s" in body["message"] and "Traceback" not in body["message"]
    page = client.post("/predict", data={k: str(v) for k, v in BAD.items()})
    assert page.status_code == 504 and "Prediction timed out" in page.get_data(as_text=True)
    answers = [client.post("/api/v1/predict", json=VALID) for _ in range(20)]
    assert {a.status_code for a in answers} == {200}, "the worker must keep answering"
    overrun = client.get("/api/v1/model").get_json()["roles"]["champion_overrun"]
    assert overrun["role"] == "champion" and overrun["worker_killed"] is False
    assert overruns(client, "champion") == 2


def test_a_sleeping_champion_is_stopped_too(make_app, model_root, trained_models, tmp_path):
    build_snapshot(model_root, {CLASSIFIER: hanging(trained_models.pickled, tmp_path / "h",
                                                    how="sleep")}, "1.0.0")
    client = make_app(predict_timeout=TIMEOUT).test_client()
    assert client.post("/api/v1/predict", json=BAD).status_code == 504
    assert client.post("/api/v1/predict", json=VALID).status_code == 200


def canary_apps(make_app, publish, model_root, trained_models, tmp_path):
    """Make apps (workers sharing one VALIDATION_DIR) with a hanging canary on every client."""
    publish("1.0.0")
    stage_candidate(model_root, hanging(trained_models.pickled, tmp_path / "h"))
    settings = dataclasses.replace(ChallengerConfig(key_header=KEY_HEADER),
                                   canary_percent=100.0)
    return lambda: settle(make_app(challenger=settings, predict_timeout=TIMEOUT))


def test_a_hanging_canary_is_answered_by_the_champion_and_stays_stopped_for_new_workers(
        make_app, publish, model_root, trained_models, tmp_path):
    make = canary_apps(make_app, publish, model_root, trained_models, tmp_path)
    worker = make().test_client()
    first = worker.post("/api/v1/predict", json=VALID, headers={KEY_HEADER: "a"})
    assert first.headers["X-Model-Role"] == "challenger"
    hung = worker.post("/api/v1/predict", json=BAD, headers={KEY_HEADER: "a"})
    assert hung.status_code == 200 and hung.headers["X-Model-Role"] == "champion"
    roles = worker.get("/api/v1/model").get_json()["roles"]
    assert roles["mode"] == "canary-stopped"
    assert "PREDICT_TIMEOUT" in roles["challenger"]["canary"]["guard"]["reason"]
    assert overruns(worker, "challenger") == 1
    # A worker started afterwards (a replacement) finds the canary stopped before any request.
    replacement = make().test_client()
    assert replacement.get("/api/v1/model").get_json()["roles"]["mode"] == "canary-stopped"
    later = replacement.post("/api/v1/predict", json=VALID, headers={KEY_HEADER: "a"})
    assert later.headers["X-Model-Role"] == "champion"


def test_a_metadata_file_over_the_cap_is_refused_at_validation_naming_file_and_cap(
        make_app, publish, model_root, trained_models, tmp_path):
    publish("1.0.0")
    client = make_app().test_client()
    folder = tmp_path / "big"
    folder.mkdir()
    for item in trained_models.pipeline.iterdir():
        (folder / item.name).write_bytes(item.read_bytes())
    meta = json.loads((folder / "metadata.json").read_text())
    meta["training"]["notes"] = "x" * MAX_METADATA_BYTES
    (folder / "metadata.json").write_text(json.dumps(meta))
    staged = build_snapshot(model_root, {CLASSIFIER: folder}, "1.1.0", publish=False)
    verdict = client.post("/-/validate", json={"snapshot": staged}, headers=AUTH)
    assert verdict.status_code == 422
    assert "metadata.json is larger than the 1024 KiB" in verdict.get_json()["reason"]
    assert client.post("/api/v1/predict", json=VALID).status_code == 200


def test_the_hard_deadline_kills_only_calls_that_ran_past_it_never_one_just_begun():
    """A stamp written after the master's clock read is a call just begun, not one WRAP old."""
    from serving.front import calls

    stamps = calls.ModelCalls(slots=2)
    assert stamps.claim()
    just_begun = (calls._now_ms() + 50) % calls.WRAP  # the worker's clock ran ahead of the look
    stamps.cells[stamps.mine * 3 + 1] = just_begun
    stamps.cells[stamps.mine * 3 + 2] = calls.deadline.CHAMPION
    assert stamps.overdue(1.5) == []
    stamps.cells[stamps.mine * 3 + 1] = (calls._now_ms() - 2000) % calls.WRAP or 1
    assert stamps.overdue(1.5) == [(stamps.cells[stamps.mine * 3], calls.deadline.CHAMPION)]
    assert stamps.overdue(1.5) == []  # its stamp was cleared: killed once
