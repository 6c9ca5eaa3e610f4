"""A regressor's predictions and true values reach MPM (the local registry's stand-in) through
the comet_mpm SDK, in the SDK's output keys for a number: `value`, no probability."""

from __future__ import annotations

import requests

from devkit.processes import wait_until
from devkit.snapshots import build_snapshot
from serving.config import MpmConfig, ServingConfig
from serving.http.app import create_app
from tests.support.mpm import model_root
from tests.support.own_models import own_models  # noqa: F401


def events_of(registry, model: str) -> dict[str, dict]:
    """The MPM items received for a model, by kind and prediction id."""
    answer = requests.get(registry.url + "/mpm/local/events", params={"limit": 1000},
                          headers=registry.headers, timeout=10).json()
    return {f"{e['kind']}:{e['predictionId']}": e for e in answer["items"]
            if e.get("modelName") == model}


def test_a_regressors_events_and_true_values_arrive_with_the_sdks_keys(
        tmp_path, own_models, local_registry, monkeypatch):  # noqa: F811
    kind = own_models["price"]
    # The SDK reads its server from the environment, as in the pod.
    monkeypatch.setenv("COMET_URL_OVERRIDE", local_registry.comet_url_override)
    root = model_root(tmp_path)
    build_snapshot(root, {"diamond-price": kind.folder}, "1.0.0")
    mpm = MpmConfig(enabled=True, api_key=local_registry.api_key, workspace="ws",
                    url=local_registry.comet_url_override, batch_seconds=1)
    # validation_wait: a pipeline with a column transformer takes seconds to validate here
    app = create_app(ServingConfig(model_root=root, watch=False, mpm=mpm, validation_wait=30))
    try:
        client = app.test_client()
        single = client.post("/api/v1/predict", json=kind.instance(0)).get_json()
        batch = client.post("/api/v1/predict",
                            json={"instances": [kind.instance(1), kind.instance(2)]}).get_json()
        bad = client.post("/api/v1/labels", json={"prediction_id": single["prediction_id"],
                                                  "label": "expensive"})
        assert bad.status_code == 400 and bad.get_json()["errors"][0]["field"] == "label"
        truth = float(kind.sample["price"].iloc[0])
        assert client.post("/api/v1/labels", json={"prediction_id": single["prediction_id"],
                                                   "label": truth}).status_code == 202
        ids = [single["prediction_id"], *(f"{batch['prediction_id']}-{i}" for i in range(2))]
        received = wait_until(lambda: (e := events_of(local_registry, "diamond-price")) and
                              all(f"event:{i}" in e for i in ids) and
                              f"label:{ids[0]}" in e and e, timeout=30,
                              what="the regressor's events and label at MPM")
        values = [single["value"], *(p["value"] for p in batch["predictions"])]
        for prediction_id, value in zip(ids, values, strict=True):
            event = received[f"event:{prediction_id}"]
            assert event["prediction"] == {"value": value}, event
            assert event["modelVersion"] == "1.0.0"
            assert set(event["features"]) == set(kind.sample.columns.drop("price"))
        assert received[f"label:{ids[0]}"]["labels"] == {"value": truth}
    finally:
        app.extensions["serving.swap.holder"].stop()
        app.extensions["serving.monitor"].stop(timeout=5)
