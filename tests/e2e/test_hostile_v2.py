"""Hostile input through the Open Inference Protocol (V2) against the live pod: never a 5xx.

The fuzzing of the JSON API (test_hostile_input), extended: valid V2 bodies built from the
OpenAPI document's features, mutated by hypothesis (tensors dropped, fields and values replaced,
tensors added), the 2-D form, and raw bytes under any Inference-Header-Content-Length. Every
answer is scanned for the pod's secrets.
"""

from __future__ import annotations

import json

import requests
from hypothesis import given
from hypothesis import strategies as st

from tests.e2e.test_hostile_input import (
    FEATURES,
    FUZZ,
    JSON_ANY,
    OPENAPI,
    VALID_INSTANCE,
    http,
    scanned,
)

__all__ = ["http"]  # the fixture, shared with the JSON API's fuzzing
DATATYPES = OPENAPI["components"]["schemas"]["V2Tensor"]["properties"]["datatype"]["enum"]
OUTPUTS = OPENAPI["components"]["schemas"]["V2Output"]["properties"]["name"]["enum"]


def as_tensors(instance: dict) -> list[dict]:
    """One V2 tensor per feature, as the model metadata describes them."""
    return [{"name": name, "shape": [1], "datatype": "BYTES" if "enum" in FEATURES[name]
             else "FP64", "data": [value]} for name, value in instance.items()]


TENSOR_FIELD = st.sampled_from(["name", "shape", "datatype", "data", "parameters"])
FIELD_VALUE = st.one_of(st.none(), JSON_ANY, st.sampled_from(DATATYPES),
                        st.lists(st.integers(-2, 3000), max_size=3),
                        st.fixed_dictionaries({"binary_data_size": st.integers(-1, 100)}))


@st.composite
def mutated_request(draw) -> tuple[dict, bool]:
    """A valid V2 request (one row or a few, or the 2-D form) with mutations; and whether any.

    A mutation drops a tensor, removes or replaces one of its fields, replaces a value, adds a
    tensor of random fields, or sets a top-level key (id, parameters, outputs).
    """
    rows = draw(st.lists(VALID_INSTANCE, min_size=1, max_size=3))
    if draw(st.booleans()):
        tensors = [{**t, "shape": [len(rows)], "data": [r[t["name"]] for r in rows]}
                   for t in as_tensors(rows[0])]
    else:
        tensors = [{"name": "rows", "shape": [len(rows), len(FEATURES)], "datatype": "BYTES",
                    "data": [str(r[n]) for r in rows for n in FEATURES]}]
    body: dict = {"inputs": tensors}
    mutations = draw(st.integers(0, 3))
    for _ in range(mutations):
        action = draw(st.sampled_from(["drop", "strip", "field", "value", "add", "top"]))
        tensor = draw(st.sampled_from(tensors)) if tensors else None
        if action == "drop" and tensor is not None:
            tensors.remove(tensor)
        elif action == "strip" and tensor is not None:
            tensor.pop(draw(TENSOR_FIELD), None)
        elif action == "field" and tensor is not None:
            tensor[draw(TENSOR_FIELD)] = draw(FIELD_VALUE)
        elif action == "value" and tensor is not None and isinstance(tensor.get("data"), list) \
                and tensor["data"]:
            tensor["data"][draw(st.integers(0, len(tensor["data"]) - 1))] = draw(JSON_ANY)
        elif action == "add":
            tensors.append({draw(TENSOR_FIELD): draw(FIELD_VALUE) for _ in range(3)})
        else:
            body[draw(st.sampled_from(["id", "parameters", "outputs"]))] = draw(st.one_of(
                JSON_ANY, st.lists(st.fixed_dictionaries(
                    {"name": st.sampled_from(OUTPUTS) | st.text(max_size=8)}), max_size=3)))
    return body, mutations > 0


def infer_url(pod, http: requests.Session) -> str:
    """The pod's V2 infer URL (its model name from /api/v1/model)."""
    name = http.get(pod.serving.url + "/api/v1/model", timeout=10).json()["primary"]
    return f"{pod.serving.url}/v2/models/{name}/infer"


def assert_protocol_answer(response: requests.Response) -> None:
    """A 200 with plausible outputs, or the protocol's error shape: {"error": "..."} only."""
    answer = response.json()
    if response.status_code == 200:
        outputs = {o["name"]: o["data"] for o in answer["outputs"]}
        assert set(outputs.get("label", ["Gold"])) <= {"Gold", "Silver"}
        assert all(0.0 <= p <= 1.0 for p in outputs.get("probability", []))
    else:
        assert isinstance(answer["error"], str) and answer["error"], answer


@FUZZ
@given(case=st.one_of(mutated_request(), JSON_ANY.map(lambda body: (body, True))))
def test_fuzzed_v2_requests_never_get_a_5xx(pod, http, case):
    """Unmutated requests: 200; anything else: 200, 400 or 413 in the protocol's shape."""
    body, mutated = case
    response = scanned(pod, http.post(infer_url(pod, http), data=json.dumps(body), timeout=10,
                                      headers={"Content-Type": "application/json"}), "v2 infer")
    assert response.status_code in (200, 400, 413), response.text[:500]
    if not mutated:
        assert response.status_code == 200, response.text[:500]
    assert_protocol_answer(response)


@FUZZ
@given(body=st.binary(max_size=3000),
       header=st.one_of(st.none(), st.integers(-5, 3100).map(str),
                        st.text(st.characters(min_codepoint=33, max_codepoint=126),
                                max_size=12)))
def test_fuzzed_raw_v2_bodies_never_get_a_5xx(pod, http, body, header):
    """Any bytes, with any Inference-Header-Content-Length or none: 400 or 413, never 5xx."""
    headers = {} if header is None else {"Inference-Header-Content-Length": header}
    response = scanned(pod, http.post(infer_url(pod, http), data=body, headers=headers,
                                      timeout=10), "v2 infer (raw)")
    assert response.status_code in (200, 400, 413), response.text[:500]
    assert_protocol_answer(response)
