"""The lean prediction path answers exactly as Flask's views do, without Flask's dispatch.

Each request of a corpus of good and bad ones is sent to the app as served (serving.http.lean in
front) and to Flask's own WSGI app; status, headers in order and body must match, byte for
byte, once the prediction id (new for every request) is set aside.
"""

from __future__ import annotations

import json
import struct

import pytest
from werkzeug.test import Client

from devkit.load import v2_body
from serving.http.lean import LeanPredictions
from serving.telemetry import metrics
from tests.serving.test_v2 import BAD, with_input
from tests.serving.test_v2_binary import ROWS, binary_body
from tests.support.diamonds import CLASSIFIER, VALID

INFER = f"/v2/models/{CLASSIFIER}/infer"
JSON = {"Content-Type": "application/json"}


def _binary_body() -> tuple[bytes, dict[str, str]]:
    body = with_input("carat", data=None, parameters={"binary_data_size": 8})
    header = json.dumps(body).encode()
    return header + struct.pack("<d", 0.31), {"Inference-Header-Content-Length": str(len(header))}


def _as_bytes(body) -> bytes:
    return body if isinstance(body, bytes) else json.dumps(body).encode()


PLAIN = {  # answered by the lean path: the right method, path, type and a declared length
    "single": ("/api/v1/predict", VALID, JSON),
    "batch": ("/api/v1/predict", {"instances": [VALID, {**VALID, "carat": 2.1}]}, JSON),
    "charset": ("/api/v1/predict", VALID, {"Content-Type": "application/json; charset=utf-8"}),
    "invalid field": ("/api/v1/predict", {**VALID, "carat": "big"}, JSON),
    "missing field": ("/api/v1/predict", {"carat": 0.3}, JSON),
    "not JSON": ("/api/v1/predict", b"{", JSON),
    "NaN": ("/api/v1/predict", b'{"carat": NaN}', JSON),
    "batch too large": ("/api/v1/predict", {"instances": [VALID] * 1001}, JSON),
    "v2": (INFER, v2_body(VALID), {}),
    "v2 versioned": (f"/v2/models/{CLASSIFIER}/versions/1.0.0/infer", v2_body(VALID), {}),
    "v2 other version": (f"/v2/models/{CLASSIFIER}/versions/9.9.9/infer", v2_body(VALID), {}),
    "v2 other model": ("/v2/models/other/infer", v2_body(VALID), {}),
    "v2 binary": (INFER, *_binary_body()),
    "v2 binary sections": (INFER, *binary_body(ROWS[:5])),
    "v2 binary outputs": (INFER, {**v2_body(VALID), "parameters": {"binary_data_output": True}},
                          {}),
    "v2 bad binary length": (INFER, _binary_body()[0],
                             {"Inference-Header-Content-Length": "99999"}),
    **{f"v2 {name}": (INFER, case[0], {}) for name, case in BAD.items()},
}
FALLBACK = {  # left to Flask: another type, method or path
    "no content type": ("/api/v1/predict", VALID, {}),
    "text": ("/api/v1/predict", VALID, {"Content-Type": "text/plain"}),
    "trailing slash": ("/api/v1/predict/", VALID, JSON),
    "v2 metadata path": (f"/v2/models/{CLASSIFIER}/infer/x", v2_body(VALID), {}),
}


def _normalized(response) -> tuple[int, list[tuple[str, str]], bytes]:
    """Status, headers and body with this request's own prediction id replaced."""
    headers = list(response.headers.items())
    body = response.get_data()
    prediction_id = response.headers.get("X-Prediction-Id")
    if prediction_id:
        body = body.replace(prediction_id.encode(), b"ID")
        headers = [(k, "ID" if k == "X-Prediction-Id" else v) for k, v in headers]
    length = str(len(body))  # the id's length may differ from one request to the next
    headers = [(k, length if k == "Content-Length" else v) for k, v in headers]
    return response.status_code, headers, body


@pytest.fixture(scope="module")
def apps(module_app):
    """The app as served (lean in front), Flask's own, and the paths Flask dispatched."""
    lean = module_app.wsgi_app
    assert isinstance(lean, LeanPredictions)
    dispatched = []
    flask = lean.flask

    def counted(environ, start_response):
        dispatched.append(environ["PATH_INFO"])
        return flask(environ, start_response)

    lean.flask = counted
    yield Client(lean), Client(flask), dispatched


@pytest.mark.parametrize("case", [*PLAIN.values(), *FALLBACK.values()],
                         ids=[*PLAIN, *FALLBACK])
def test_the_lean_path_answers_byte_for_byte_as_flask(apps, case):
    lean, flask, dispatched = apps
    path, body, headers = case
    dispatched.clear()
    answers = [client.post(path, data=_as_bytes(body), headers=headers)
               for client in (lean, flask)]
    assert _normalized(answers[0]) == _normalized(answers[1])
    assert answers[0].status_code < 500
    plain = case in PLAIN.values()
    assert dispatched == ([] if plain else [path])  # plain requests never reach Flask's dispatch


def test_lean_answers_count_in_the_request_metrics_as_flasks_do(apps):
    lean = apps[0]

    def count(outcome: str) -> float:
        return metrics.REQUESTS.labels("api.predict", outcome)._value.get()

    before = count("ok"), count("client_error")
    assert lean.post("/api/v1/predict", json=VALID).status_code == 200
    assert lean.post("/api/v1/predict", json={"carat": "x"}).status_code == 400
    assert (count("ok"), count("client_error")) == (before[0] + 1, before[1] + 1)
