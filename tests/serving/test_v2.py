"""The Open Inference Protocol (V2) in process: the forms it takes, the refusals it words, roles.

Requests here are written by hand to reach what a client library never sends (nested data,
broken binary sections, wrong shapes); tests/serving/test_v2_client.py drives a real client.
"""

from __future__ import annotations

import json
import struct

import pytest

from devkit.load import v2_body
from tests.serving.test_challenger import KEY_HEADER, both  # noqa: F401
from tests.support.diamonds import CLASSIFIER, VALID

INFER = f"/v2/models/{CLASSIFIER}/infer"


def infer(client, body, **kwargs):
    """POST a V2 body (a dict is sent as JSON, bytes as they are)."""
    data = body if isinstance(body, bytes) else json.dumps(body)
    return client.post(INFER, data=data, **kwargs)


def with_input(feature: str, **fields) -> dict:
    """The V2 body of VALID with one tensor's fields replaced."""
    body = v2_body(VALID)
    tensor = next(t for t in body["inputs"] if t["name"] == feature)
    tensor.update(fields)
    return body


def test_a_v2_answer_is_the_api_v1_answer_with_the_models_headers(client):
    answer = infer(client, v2_body(VALID))
    v1 = client.post("/api/v1/predict", json=VALID).get_json()
    assert answer.status_code == 200, answer.get_json()
    body = answer.get_json()
    outputs = {o["name"]: o for o in body["outputs"]}
    assert outputs["label"] == {"name": "label", "datatype": "BYTES", "shape": [1],
                                "data": [v1["label"]]}
    assert outputs["probability"]["data"] == [v1["probability"]]
    assert answer.headers["X-Model-Version"] == body["model_version"] == "1.0.0"
    assert answer.headers["X-Prediction-Id"] == body["parameters"]["prediction_id"]


def test_nested_column_tensors_integers_and_a_request_id_are_taken(client):
    body = v2_body({**VALID, "price": 420})
    for tensor in body["inputs"]:
        tensor["shape"], tensor["data"] = [1, 1], [tensor["data"]]
        if tensor["name"] == "price":
            tensor["datatype"] = "INT64"
    body["id"] = "request-7"
    answer = infer(client, body)
    assert answer.status_code == 200, answer.get_json()
    assert answer.get_json()["id"] == "request-7"


def test_a_2d_numeric_tensor_cannot_hold_categories_and_says_how_to_send_them(client):
    body = {"inputs": [{"name": "table", "shape": [1, 9], "datatype": "FP64",
                        "data": [[0.3, 1, 2, 61.5, 55, 420, 4.3, 4.3, 2.6]]}]}
    body["inputs"][0]["name"] = "rows"
    answer = infer(client, body)
    assert answer.status_code == 400
    assert answer.get_json()["error"].startswith("input 'rows': datatype 'FP64' cannot hold the "
                                                 "category color")


def test_a_2d_bytes_tensor_names_the_row_and_the_column_of_a_bad_value(client):
    row = [str(VALID[n]) for n in VALID]
    bad = [*row[:3], "NaN", *row[4:]]
    answer = infer(client, {"inputs": [{"name": "rows", "shape": [2, 9], "datatype": "BYTES",
                                        "data": row + bad}]})
    assert answer.status_code == 400
    assert answer.get_json() == {"error": "input 'rows' [1, 3] (depth) must be a number"}


def _binary(body: dict, chunks: list[bytes]) -> tuple[bytes, dict]:
    header = json.dumps(body).encode()
    return header + b"".join(chunks), {"Inference-Header-Content-Length": str(len(header))}


def test_binary_tensors_are_read_and_bad_binary_sections_are_400(client):
    body = v2_body(VALID)
    carat = body["inputs"][0]
    del carat["data"]
    carat["parameters"] = {"binary_data_size": 8}
    raw, headers = _binary(body, [struct.pack("<d", VALID["carat"])])
    assert infer(client, raw, headers=headers).status_code == 200
    for chunks, header, words in (
            ([b"\x00" * 4], None, "binary_data_size does not fit"),
            ([struct.pack("<d", 0.31), b"x"], None, "no input's binary_data_size claims"),
            ([struct.pack("<d", 0.31)], "99999", "Inference-Header-Content-Length"),
            ([struct.pack("<d", 0.31)], "-1", "Inference-Header-Content-Length")):
        raw, headers = _binary(body, chunks)
        if header is not None:
            headers["Inference-Header-Content-Length"] = header
        answer = infer(client, raw, headers=headers)
        assert answer.status_code == 400 and words in answer.get_json()["error"], answer.text


BAD = {
    "not JSON": (b"{", 400, "the body is not valid JSON"),
    "inputs not a list": ({"inputs": 3}, 400, "$.inputs"),
    "no inputs": ({"inputs": []}, 400, "one tensor per feature"),
    "an unknown input": ({"inputs": [*v2_body(VALID)["inputs"],
                                     {"name": "colour", "shape": [1], "datatype": "BYTES",
                                      "data": ["E"]}]}, 400, "'colour' is not a feature"),
    "an input twice": ({"inputs": [*v2_body(VALID)["inputs"], v2_body(VALID)["inputs"][0]]},
                       400, "'carat' is given twice"),
    "a float in an INT64 tensor": (with_input("carat", datatype="INT64"), 400,
                                   "input 'carat' element 0: '0.31' is not of datatype INT64"),
    "a boolean": (with_input("carat", data=[True]), 400, "is not of datatype FP64"),
    "an unsupported datatype": (with_input("carat", datatype="BOOL"), 400, "not supported"),
    "no data": (with_input("carat", data=None), 400, "data is missing"),
    "too little data": (with_input("carat", data=[]), 400, "needs 1 values; data holds 0"),
    "no rows": (with_input("carat", shape=[0], data=[]), 400, "at least one row"),
    "negative shape": (with_input("carat", shape=[-1]), 400, "at least one row"),
    "an unknown output": ({**v2_body(VALID), "outputs": [{"name": "logits"}]}, 400,
                          "output 'logits' is not an output"),
    "too many rows": (with_input("carat", shape=[1001], data=[0.3] * 1001), 413,
                      "input 'carat' holds 1001 values; at most 1000"),
    "a huge name echoed": (with_input("carat", name="c" * 5000), 400, "ccc...'"),
}


@pytest.mark.parametrize("case", BAD.values(), ids=BAD.keys())
def test_bad_requests_get_the_protocols_error_shape_naming_what_is_wrong(client, case):
    body, status, words = case
    answer = infer(client, body)
    assert answer.status_code == status, answer.text
    error = answer.get_json()
    assert list(error) == ["error"] and words in error["error"], error
    assert len(error["error"]) < 1000


def test_unknown_models_versions_and_paths_are_404_and_bodies_over_the_limit_413(make_app,
                                                                                publish):
    publish("1.0.0")
    client = make_app(max_body_bytes=2000).test_client()
    assert client.get(f"/v2/models/{CLASSIFIER}/versions/1.0.0/ready").status_code == 200
    for path in ("/v2/models/other", f"/v2/models/{CLASSIFIER}/versions/2.0.0"):
        answer = client.get(path)
        assert answer.status_code == 404 and "is not served" in answer.get_json()["error"]
    answer = infer(client, b"x" * 3000)
    assert answer.status_code == 413 and "larger than 2000 bytes" in answer.get_json()["error"]


def test_without_a_model_v2_is_not_ready_and_infer_is_503(make_app):
    client = make_app().test_client()
    assert client.get("/v2/health/live").status_code == 200
    assert client.get("/v2/health/ready").status_code == 503
    answer = infer(client, v2_body(VALID))
    assert answer.status_code == 503 and answer.headers["Retry-After"] == "1"
    assert "no model is loaded" in answer.get_json()["error"]


def test_a_canary_client_is_answered_by_the_challenger_through_v2(both):  # noqa: F811
    client = both(canary_percent=100.0).test_client()
    answer = infer(client, v2_body(VALID), headers={KEY_HEADER: "client-1"})
    assert answer.status_code == 200, answer.text
    body = answer.get_json()
    assert body["parameters"]["role"] == answer.headers["X-Model-Role"] == "challenger"
    assert body["model_version"] == answer.headers["X-Model-Version"] == "1.1.0"


def test_the_openapi_document_lists_the_v2_paths(client):
    paths = client.get("/api/v1/openapi.json").get_json()["paths"]
    assert {"/v2/health/live", "/v2/health/ready", "/v2", "/v2/models/{name}",
            "/v2/models/{name}/ready", "/v2/models/{name}/infer"} <= set(paths)
