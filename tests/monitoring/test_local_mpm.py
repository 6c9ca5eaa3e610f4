"""The local registry's MPM endpoints over HTTP: what they accept, refuse and count."""

from __future__ import annotations

import requests

from devkit.registry import unique_name


def event(model: str, prediction_id: str, version: str = "1.0.0") -> dict:
    return {"workspaceName": "ws", "modelName": model, "modelVersion": version,
            "predictionId": prediction_id, "timestamp": 1, "features": {"carat": 1.0},
            "prediction": {"value": "Gold", "probability": 0.9}}


def post(registry, kind: str, data, key: str | None = None) -> requests.Response:
    return requests.post(f"{registry.url}/mpm/v2/{kind}/batch", json={"data": data}, timeout=10,
                         headers={"Authorization": key or registry.api_key})


def counts_of(registry, model: str) -> dict[str, dict]:
    answer = requests.get(registry.url + "/mpm/local/counts", timeout=10).json()
    return {m["modelVersion"]: m for m in answer["models"] if m["modelName"] == model}


def test_events_and_labels_are_counted_once_per_prediction_id_and_version(local_registry):
    """Duplicates (SDK retries) are not counted twice; a label joins an event of its id."""
    model = unique_name("mpm")
    assert requests.get(local_registry.url + "/mpm/isAlive/ping", timeout=10).status_code == 200
    assert post(local_registry, "events", [event(model, "a"), event(model, "b")]).json() == {
        "accepted": 2}
    assert post(local_registry, "events", [event(model, "a"),
                                           event(model, "a", "2.0.0")]).json() == {"accepted": 1}
    label = {**event(model, "b"), "labels": {"value": "Gold"}}
    assert post(local_registry, "labels", [label, {**label, "predictionId": "zz"}]).ok
    assert counts_of(local_registry, model) == {
        "1.0.0": {"workspaceName": "ws", "modelName": model, "modelVersion": "1.0.0",
                  "events": 2, "labels": 2, "labelsJoined": 1},
        "2.0.0": {"workspaceName": "ws", "modelName": model, "modelVersion": "2.0.0",
                  "events": 1, "labels": 0, "labelsJoined": 0}}


def test_a_wrong_key_or_a_malformed_batch_is_refused_by_name(local_registry):
    model = unique_name("mpm")
    assert post(local_registry, "events", [event(model, "a")], key="wrong").status_code == 401
    missing = event(model, "a")
    del missing["modelVersion"]
    refused = post(local_registry, "events", [event(model, "b"), missing])
    assert refused.status_code == 400 and "data[1].modelVersion" in refused.json()["msg"]
    assert post(local_registry, "labels", [event(model, "c")]).status_code == 400  # no labels
    assert requests.get(local_registry.url + "/mpm/local/events", timeout=10).status_code == 401
    assert counts_of(local_registry, model) == {}


def test_batch_settings_are_the_sdks_own_unless_ours_are_set(monkeypatch):
    """MPM_BATCH_SIZE/SECONDS unset: the SDK's COMET_MPM_MAX_BATCH_SIZE/_TIME decide."""
    from comet_mpm import CometMPM

    from serving.config import _mpm as mpm_config  # the MPM part of serving's settings
    from serving.mpm_sdk import ModelKey, client_options

    monkeypatch.setenv("COMET_MPM_MAX_BATCH_SIZE", "7")
    monkeypatch.setenv("COMET_MPM_MAX_BATCH_TIME", "9")
    key = ModelKey("ws", "m", "1.0.0")
    env = {"MPM_ENABLED": "true", "COMET_API_KEY": "k"}
    for ours, expected in (({}, (7, 9)), ({"MPM_BATCH_SIZE": "3", "MPM_BATCH_SECONDS": "2"},
                                          (3, 2))):
        # disabled: the SDK resolves its settings but starts no sender thread
        client = CometMPM(**client_options(mpm_config({**env, **ours}), key), disabled=True)
        settings = client._settings  # what the SDK's batching uses
        assert (settings.mpm_max_batch_size, settings.mpm_max_batch_time) == expected
