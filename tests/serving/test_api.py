"""The JSON API: predictions, their versions, and a clear 4xx for every malformed request."""

from __future__ import annotations

import io
import json

import pytest

from serving.http.context import header_safe
from tests.support.diamonds import CLASSIFIER, VALID


def fields_of(response) -> list[str]:
    """The offending fields an error response names."""
    return [e["field"] for e in response.get_json()["errors"]]


def test_one_instance_gets_one_prediction_naming_the_model(client):
    """A single object answers label, probability and the model, also in headers."""
    response = client.post("/api/v1/predict", json=VALID)
    assert response.status_code == 200
    body = response.get_json()
    assert body["label"] in ("Gold", "Silver")
    assert 0.5 <= body["probability"] <= 1.0
    assert body["model"]["version"] == "1.0.0"
    assert body["model"]["versions"] == {CLASSIFIER: "1.0.0"}
    assert response.headers["X-Model-Version"] == "1.0.0"
    assert response.headers["X-Model-Snapshot"] == body["model"]["snapshot"]


def test_a_batch_gets_one_prediction_per_instance_in_order(client):
    """{"instances": [...]} answers a list in the same order as the single predictions."""
    instances = [VALID, {**VALID, "carat": 2.1, "price": 15000, "depth": 66.0, "table": 62.0},
                 {**VALID, "color": "J", "clarity": "I1"}]
    response = client.post("/api/v1/predict", json={"instances": instances})
    assert response.status_code == 200
    body = response.get_json()
    assert body["count"] == 3 and len(body["predictions"]) == 3
    singles = [client.post("/api/v1/predict", json=i).get_json() for i in instances]
    assert [p["label"] for p in body["predictions"]] == [s["label"] for s in singles]
    assert [p["probability"] for p in body["predictions"]] == [s["probability"] for s in singles]


def test_integers_are_accepted_for_numbers(client):
    """JSON integers are numbers too."""
    assert client.post("/api/v1/predict", json={**VALID, "table": 55, "depth": 62}).status_code \
        == 200


@pytest.mark.parametrize(("change", "field", "message"), [
    ({"carat": "0.3"}, "carat", "must be a number"),
    ({"carat": None}, "carat", "must be a number"),
    ({"carat": True}, "carat", "must be a number"),
    ({"carat": [0.3]}, "carat", "must be a number"),
    ({"carat": 99.0}, "carat", "must be between 0.1 and 6"),
    ({"price": -1}, "price", "must be between 100 and 30000"),
    ({"price": 10**400}, "price", "must be between 100 and 30000"),
    ({"color": "Z"}, "color", "must be one of D, E, F, G, H, I, J"),
    ({"color": 3}, "color", "must be one of D, E, F, G, H, I, J"),
    ({"clarity": "si1"}, "clarity", "must be one of IF, VVS1"),
    ({"weight": 1.0}, "weight", "is not a known feature"),
])
def test_each_bad_field_is_named(client, change, field, message):
    """Wrong type, range, category or name: 400 naming the field and what is wrong."""
    response = client.post("/api/v1/predict", json={**VALID, **change})
    assert response.status_code == 400
    errors = response.get_json()["errors"]
    assert [e["field"] for e in errors] == [field]
    assert errors[0]["message"].startswith(message)


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_non_finite_numbers_are_refused(client, literal):
    """NaN and infinities (which Python's json accepts) are named, not predicted."""
    body = json.dumps({**VALID, "depth": 0}).replace('"depth": 0', f'"depth": {literal}')
    response = client.post("/api/v1/predict", data=body, content_type="application/json")
    assert response.status_code == 400
    assert response.get_json()["errors"] == [{"field": "depth",
                                              "message": "must be a finite number"}]


def test_missing_fields_are_each_named(client):
    """Every missing feature is listed."""
    partial = {k: v for k, v in VALID.items() if k not in ("x", "clarity")}
    response = client.post("/api/v1/predict", json=partial)
    assert response.status_code == 400
    assert fields_of(response) == ["clarity", "x"]
    assert all(e["message"] == "is required" for e in response.get_json()["errors"])


def test_batch_errors_name_the_instance_and_the_field(client):
    """In a batch, fields are named instances[i].field, all of them, in order."""
    instances = [VALID, {**VALID, "carat": "heavy"}, "not an object", {**VALID, "color": "Q"}]
    response = client.post("/api/v1/predict", json={"instances": instances})
    assert response.status_code == 400
    assert fields_of(response) == ["instances[1].carat", "instances[2]", "instances[3].color"]


@pytest.mark.parametrize(("body", "field"), [
    ({"instances": []}, "instances"),
    ({"instances": {"carat": 1}}, "instances"),
    ({"instances": [VALID], "extra": 1}, "extra"),
    ([VALID], "body"),
    ("carat", "body"),
])
def test_malformed_shapes_are_refused(client, body, field):
    """Empty batch, wrong containers, stray keys, non-object bodies: 400 naming the part."""
    response = client.post("/api/v1/predict", json=body)
    assert response.status_code == 400
    assert field in fields_of(response)


def test_an_oversized_batch_is_413(make_app, publish):
    """More instances than MAX_BATCH: 413 naming instances."""
    publish()
    client = make_app(max_batch=5).test_client()
    response = client.post("/api/v1/predict", json={"instances": [VALID] * 6})
    assert response.status_code == 413
    assert fields_of(response) == ["instances"]
    assert "at most 5" in response.get_json()["errors"][0]["message"]
    assert response.get_json()["message"] == ("too many instances: holds 6 instances; at most 5 "
                                              "are allowed")
    assert client.post("/api/v1/predict", json={"instances": [VALID] * 5}).status_code == 200


def test_an_oversized_body_is_413(make_app, publish):
    """A body over MAX_BODY_BYTES is refused before it is parsed."""
    publish()
    client = make_app(max_body_bytes=1000).test_client()
    response = client.post("/api/v1/predict", json={"instances": [VALID] * 20})
    assert response.status_code == 413
    assert response.get_json()["error"] == "request_entity_too_large"
    assert fields_of(response) == ["body"]


@pytest.mark.parametrize("raw", [b"{", b"", b"\xff\xfe", b"[" * 100000, b'{"carat": }'])
def test_malformed_json_is_400(client, raw):
    """Unparseable bodies (even pathological ones) are a 400 naming the body."""
    response = client.post("/api/v1/predict", data=raw, content_type="application/json")
    assert response.status_code == 400
    assert fields_of(response) == ["body"]
    assert response.get_json()["errors"][0]["message"].startswith("is not valid JSON")


class _Unreadable(io.BytesIO):
    """A request body whose connection fails mid-read."""

    def read(self, size: int = -1) -> bytes:
        raise OSError("connection reset by peer")


@pytest.mark.parametrize(("stream", "error"), [(io.BytesIO(b'{"carat": 0.3'), "invalid_input"),
                                               (_Unreadable(), "bad_request")],
                         ids=["shorter-than-its-length", "read-fails"])
def test_a_body_cut_short_or_unreadable_is_400(client, stream, error):
    """A body shorter than its Content-Length, or one whose read fails: 400, never a 500."""
    response = client.post("/api/v1/predict", content_type="application/json",
                           environ_overrides={"wsgi.input": stream, "CONTENT_LENGTH": "500"})
    assert response.status_code == 400
    assert response.get_json()["error"] == error


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded",
                                          None])
def test_a_wrong_content_type_is_415(client, content_type):
    """Only application/json bodies are read."""
    response = client.post("/api/v1/predict", data=json.dumps(VALID), content_type=content_type)
    assert response.status_code == 415
    assert fields_of(response) == ["Content-Type"]


def test_error_reports_are_capped(client):
    """A batch of nonsense names the first 100 offending fields and says it stopped."""
    response = client.post("/api/v1/predict", json={"instances": [{"carat": "x"}] * 50})
    body = response.get_json()
    assert response.status_code == 400
    assert len(body["errors"]) == 100 and body["truncated"] is True


def test_without_a_model_predictions_are_503(make_app):
    """No snapshot published yet: 503 with a clear JSON message, and readiness fails."""
    client = make_app().test_client()
    response = client.post("/api/v1/predict", json=VALID)
    assert response.status_code == 503
    assert response.get_json() == {"error": "no_model", "message": "no model is loaded yet"}
    assert response.headers["Retry-After"]
    assert client.get("/readyz").status_code == 503


def test_the_model_endpoint_describes_the_served_snapshot(client):
    """GET /api/v1/model: versions, layout, load time, schema, last rejection."""
    body = client.get("/api/v1/model").get_json()
    assert body["ready"] is True
    assert body["model"]["versions"] == {CLASSIFIER: "1.0.0"}
    assert body["current"] == body["model"]["snapshot"]
    assert body["layout"] == "pipeline" and body["primary"] == CLASSIFIER
    assert body["loaded_at"].endswith("Z") and body["load_seconds"] >= 0
    assert body["last_rejection"] is None
    assert [f["name"] for f in body["features"]] == list(VALID)
    assert body["training"]["accuracy"] > 0.8


def test_the_openapi_document_lists_the_api(client):
    """The OpenAPI document is served and describes predict and model with every feature."""
    response = client.get("/api/v1/openapi.json")
    assert response.status_code == 200
    document = response.get_json()
    assert document["openapi"].startswith("3.")
    assert {"/api/v1/predict", "/api/v1/model"} <= set(document["paths"])
    instance = document["components"]["schemas"]["Instance"]
    assert set(instance["required"]) == set(VALID)


def test_unknown_paths_and_methods_answer_json(client):
    """404 and 405 are JSON for programs, without a trace."""
    missing = client.get("/api/v1/nothing")
    assert missing.status_code == 404 and missing.get_json()["error"] == "not_found"
    wrong = client.get("/api/v1/predict")
    assert wrong.status_code == 405 and wrong.get_json()["error"] == "method_not_allowed"
    assert "POST" in wrong.headers["Allow"]


def test_a_bug_answers_500_without_a_trace(client, monkeypatch):
    """Even an unexpected exception is a plain JSON 500."""
    holder = client.application.extensions["serving.swap.holder"]

    def explode(matrix):
        raise RuntimeError("secret internals")

    monkeypatch.setattr(holder.live.predictor, "predict", explode)
    response = client.post("/api/v1/predict", json=VALID)
    assert response.status_code == 500
    assert response.get_json() == {"error": "internal_error",
                                   "message": "internal error; it has been logged"}
    assert b"Traceback" not in response.data and b"secret" not in response.data


@pytest.mark.parametrize("value", ["1.0.0\r\nX: y", "1.0.0\x00", "1.0.0-\u2603", "9" * 200, ""])
def test_a_header_value_serving_cannot_write_becomes_a_placeholder(value):
    """Whatever slipped past the loader, a prediction never fails on its headers."""
    assert header_safe(value) == "invalid"
    assert header_safe("1.2.3-rc.1") == "1.2.3-rc.1"


@pytest.mark.parametrize("value", [1e308, -1e308, 5e-324, -5e-324, -0.0])
def test_extreme_numbers_are_predicted_or_named_never_a_500(client, value):
    """Huge, subnormal and signed-zero features: a plain answer in range, or 400 naming them."""
    for field in ("carat", "depth", "table", "price", "x", "y", "z"):
        response = client.post("/api/v1/predict", json={**VALID, field: value})
        assert response.status_code in (200, 400), (field, response.get_data(as_text=True))
        body = json.loads(response.get_data(as_text=True), parse_constant=pytest.fail)
        if response.status_code == 200:
            assert 0.5 <= body["probability"] <= 1.0
        else:
            assert fields_of(response) == [field]


@pytest.mark.parametrize("rows", [8, 9])
def test_a_batch_of_eight_or_nine_answers_as_the_single_predictions(client, rows):
    """Eight rows (the Python walk) and nine (numpy): each as its own single prediction."""
    instances = [{**VALID, "depth": 58.0 + i, "carat": 0.3 + 0.4 * i} for i in range(rows)]
    batch = client.post("/api/v1/predict", json={"instances": instances}).get_json()
    singles = [client.post("/api/v1/predict", json=i).get_json() for i in instances]
    assert [(p["label"], p["probability"]) for p in batch["predictions"]] == \
        [(s["label"], s["probability"]) for s in singles]
