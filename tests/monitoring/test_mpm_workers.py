"""The real comet_mpm SDK in serving's workers, sending to the local registry's MPM endpoints."""

from __future__ import annotations

import socket
from pathlib import Path

import requests

from devkit.processes import wait_until
from devkit.snapshots import WORKSPACE, build_snapshot
from tests.support.diamonds import CLASSIFIER, VALID
from tests.support.mpm import events_by_id, model_root, mpm_env, sample
from tests.support.serving_process import Serving, launch

# Generous: a request that waited on a stalled Comet would take MPM_SEND_TIMEOUT or more.
SLOW_REQUEST = 5.0


def counts(registry) -> dict[str, dict]:
    """The local registry's MPM counts per model version."""
    answer = requests.get(registry.url + "/mpm/local/counts", timeout=10).json()
    return {m["modelVersion"]: m for m in answer["models"]}


def predict_many(server: Serving, n: int) -> list[requests.Response]:
    """n JSON predictions; each must succeed without waiting on MPM."""
    answers = []
    for _ in range(n):
        answer = server.predict()
        assert answer.status_code == 200, answer.text
        assert answer.elapsed.total_seconds() < SLOW_REQUEST
        answers.append(answer)
    return answers


def test_events_carry_the_served_version_across_a_hot_swap_and_labels_join(
        tmp_path: Path, local_registry, trained_models):
    """Each prediction id returned reaches MPM under the version that answered, before and
    after a hot swap; a batch's rows are <id>-<i>; a label for a returned id joins its event."""
    root = model_root(tmp_path)
    build_snapshot(root, {CLASSIFIER: trained_models.pipeline}, "2.0.0")
    server = launch(root, tmp_path, workers=2, **mpm_env(local_registry))
    try:
        server.wait_for_version("2.0.0")
        before = predict_many(server, 10)
        server.publish("3.0.0", {CLASSIFIER: trained_models.pipeline})
        server.wait_for_version("3.0.0")
        after = predict_many(server, 10)
        batch = server.session.post(server.url + "/api/v1/predict",
                                    json={"instances": [VALID, VALID]}, timeout=10).json()
        wait_until(lambda: counts(local_registry).get("3.0.0", {}).get("events", 0) >= 32,
                   timeout=30)
        events = events_by_id(local_registry)
        for answer in before + after:
            body = answer.json()
            assert answer.headers["X-Prediction-Id"] == body["prediction_id"]
            event = events[body["prediction_id"]]
            assert event["modelVersion"] == answer.headers["X-Model-Version"]
            assert (event["modelName"], event["workspaceName"]) == (CLASSIFIER, WORKSPACE)
            assert event["features"] == VALID
            assert event["prediction"] == {"value": body["label"],
                                           "probability": body["probability"]}
        assert {f"{batch['prediction_id']}-{i}" for i in (0, 1)} <= set(events)

        truth = after[0].json()
        label = server.session.post(server.url + "/api/v1/labels", timeout=10, json={
            "prediction_id": truth["prediction_id"], "label": truth["label"]})
        assert label.status_code == 202, label.text
        wait_until(lambda: counts(local_registry)["3.0.0"]["labelsJoined"] == 1, timeout=30)
        assert sample(server, "serving_mpm_events_dropped_total") == 0
        assert sample(server, "serving_mpm_events_total", kind="label") == 1
    finally:
        server.stop()


def test_a_stalled_mpm_costs_events_never_predictions(tmp_path: Path, local_registry,
                                                     trained_models):
    """MPM's batch endpoint hangs: every prediction succeeds quickly, events are dropped and
    counted, and the worker's buffer stays bounded."""
    local_registry.add_fault(path="/mpm/v2/events/batch", stall=20)
    root = model_root(tmp_path)
    build_snapshot(root, {CLASSIFIER: trained_models.pipeline}, "1.0.0")
    server = launch(root, tmp_path, workers=1, **mpm_env(
        local_registry, MPM_QUEUE_SIZE="3", MPM_BATCH_SIZE="2", MPM_SEND_TIMEOUT="2"))
    try:
        predict_many(server, 5)
        wait_until(lambda: local_registry.count("/mpm/v2/events/batch") >= 1, timeout=30)
        predict_many(server, 60)
        assert sample(server, "serving_mpm_events_dropped_total", reason="queue_full") > 0
        assert sample(server, "serving_mpm_queue_depth") <= 3
    finally:
        local_registry.clear_faults()
        server.stop()


def test_an_mpm_that_accepts_connections_and_never_answers_costs_no_prediction(
        tmp_path: Path, local_registry, trained_models):
    """COMET_URL_OVERRIDE names a socket that never answers: predictions succeed, the events
    are dropped as `unavailable` (the ping times out instead of hanging the sender)."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(64)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/clientlib/"
        root = model_root(tmp_path)
        build_snapshot(root, {CLASSIFIER: trained_models.pipeline}, "1.0.0")
        server = launch(root, tmp_path, workers=1,
                        **mpm_env(local_registry, url=url, MPM_SEND_TIMEOUT="1"))
        try:
            predict_many(server, 5)
            wait_until(lambda: sample(server, "serving_mpm_events_dropped_total",
                                      reason="unavailable") > 0, timeout=30)
            predict_many(server, 20)
        finally:
            server.stop()
