"""GET /api/v1/openapi.json describes the served model: its features, its task's answers, its
V2 tensors; the demo's document is serving/openapi.json, and real answers match the document.

Answers are checked with jsonschema against the document served, and key by key against the
response structs (issue 27: the document's response schemas are the structs').
"""

from __future__ import annotations

import json
import math
import time

import msgspec
import pytest
from jsonschema import Draft202012Validator

from devkit.snapshots import build_snapshot
from serving.config import ServingConfig
from serving.http import openapi
from serving.http.api import Prediction, Value
from serving.inputs.schema import DIAMONDS, from_metadata, inferred
from serving.model.loader import ServedModel
from serving.model.predictions import Task
from serving.oip.outputs import InferResponse, OutputTensor
from tests.support.diamonds import CLASSIFIER
from tests.support.own_models import own_models  # noqa: F401

TEMPLATE = json.loads(openapi.TEMPLATE.read_text())
PREDICT_200 = ("paths", "/api/v1/predict", "post", "responses", "200", "content",
               "application/json", "schema")


def at(document: dict, *keys: str):
    """The document's value at a path of keys."""
    for key in keys:
        document = document[key]
    return document


def validator(document: dict, schema: dict) -> Draft202012Validator:
    """A validator of one of the document's schemas, its $refs resolved in the document."""
    return Draft202012Validator({**schema, "components": document["components"]})


def component(document: dict, name: str) -> Draft202012Validator:
    return validator(document, document["components"]["schemas"][name])


def fields_of(struct: type) -> tuple[set[str], set[str]]:
    """A response struct's field names as written, and the required ones."""
    fields = msgspec.structs.fields(struct)
    return {f.encode_name for f in fields}, {f.encode_name for f in fields if f.required}


def assert_answer_matches(document: dict, answer: dict) -> None:
    """The answer is valid by the document, and holds exactly the fields its schema names."""
    validator(document, at(document, *PREDICT_200)).validate(answer)
    schemas = document["components"]["schemas"]
    batch = "predictions" in answer
    name = {(False, False): "Prediction", (True, False): "BatchPrediction",
            (False, True): "ValuePrediction", (True, True): "BatchValuePrediction"}[
        (batch, "value" in (answer["predictions"][0] if batch else answer))]
    described = schemas[name]
    assert set(answer) == set(described["properties"]), name
    assert set(answer["model"]) <= set(schemas["Model"]["properties"])
    for row in answer.get("predictions", []):
        assert set(row) == set(described["properties"]["predictions"]["items"]["properties"])


def valid_instance(document: dict, pick: int) -> dict:
    """An instance made from the document alone: enums' pick-th value, numbers at a bound."""
    instance = {}
    for name, spec in document["components"]["schemas"]["Instance"]["properties"].items():
        if "enum" in spec:
            instance[name] = spec["enum"][pick % len(spec["enum"])]
        else:
            bound = spec.get("maximum" if pick % 2 else "minimum", spec["example"])
            instance[name] = int(bound) if spec["type"] == "integer" else bound
    return instance


def violations(document: dict, instance: dict) -> list[tuple[str, object]]:
    """(feature, value) pairs the document refuses: an unknown category, a number past its
    maximum, a fraction for a whole number."""
    found: list[tuple[str, object]] = []
    for name, spec in document["components"]["schemas"]["Instance"]["properties"].items():
        if "enum" in spec:
            found.append((name, "not " + spec["enum"][0]))
        elif "maximum" in spec:
            found.append((name, spec["maximum"] + abs(spec["maximum"]) + 1))
        if spec.get("type") == "integer":
            found.append((name, instance[name] + 0.5 if instance[name] < spec["maximum"]
                          else instance[name] - 0.5))
    return found


def test_the_template_is_the_demo_models_document():
    """serving/openapi.json is what serving writes for the demo (else: python -m
    devkit.openapi_template, after changing serving/http/openapi.py)."""
    assert openapi.document(DIAMONDS, ServingConfig.max_batch) == TEMPLATE


def test_the_demo_model_is_served_the_template_and_its_examples_are_answered(client):
    """The demo's document is the file; its request examples are answered 200, as it says."""
    response = client.get("/api/v1/openapi.json")
    assert response.status_code == 200 and response.mimetype == "application/json"
    document = response.get_json()
    assert document == TEMPLATE
    assert client.get("/api/v1/openapi.json",
                      headers={"If-None-Match": response.headers["ETag"]}).status_code == 304
    examples = at(document, "paths", "/api/v1/predict", "post", "requestBody", "content",
                  "application/json", "examples")
    for example in examples.values():
        answer = client.post("/api/v1/predict", json=example["value"])
        assert answer.status_code == 200, answer.get_data(as_text=True)
        assert_answer_matches(document, answer.get_json())
    refused = client.post("/api/v1/predict", json={**examples["single"]["value"], "carat": 99})
    assert refused.status_code == 400
    component(document, "Error").validate(refused.get_json())
    v2 = at(document, "paths", "/v2/models/{name}/infer", "post", "requestBody", "content",
            "application/json", "examples", "single", "value")
    answered = client.post(f"/v2/models/{CLASSIFIER}/infer", json=v2)
    assert answered.status_code == 200, answered.get_data(as_text=True)
    component(document, "V2InferResponse").validate(answered.get_json())


@pytest.mark.parametrize("name", ["cut", "price"])
def test_an_own_models_document_describes_its_features_and_answers(
        own_models, make_app, model_root, name):  # noqa: F811
    """Features (order, types, bounds, categories), the task's answer and V2 outputs follow
    the signature; an instance made from the document is answered 200 and matches it; one
    breaking an enum, a bound or a whole number is 400, naming the field."""
    kind = own_models[name]
    build_snapshot(model_root, {kind.name: kind.folder}, "1.0.0")
    client = make_app().test_client()
    document = client.get("/api/v1/openapi.json").get_json()
    metadata = json.loads((kind.folder / "metadata.json").read_text())
    schemas = document["components"]["schemas"]
    instance_schema = schemas["Instance"]
    assert instance_schema["required"] == [f["name"] for f in metadata["features"]]
    for feature in metadata["features"]:
        spec = instance_schema["properties"][feature["name"]]
        if feature["type"] == "category":
            assert spec["enum"] == feature["categories"] and spec["type"] == "string"
        else:
            assert (spec["type"], spec["minimum"], spec["maximum"]) == \
                (feature["type"], feature["min"], feature["max"])
    assert document["info"]["title"] == f"{kind.name} API"
    outputs = schemas["V2Output"]["properties"]["name"]["enum"]
    if name == "price":
        assert schemas["Label"]["type"] == "number" and "Prediction" not in schemas
        assert outputs == ["value"]
    else:
        assert schemas["Label"]["enum"] == metadata["classes"] and "ValuePrediction" not in schemas
        assert outputs == ["label", "probability", "probabilities"]

    rows = [valid_instance(document, pick) for pick in range(3)]
    for row in rows:
        component(document, "Instance").validate(row)
        answer = client.post("/api/v1/predict", json=row)
        assert answer.status_code == 200, answer.get_data(as_text=True)
        assert_answer_matches(document, answer.get_json())
    batch = client.post("/api/v1/predict", json={"instances": rows})
    assert batch.status_code == 200
    assert_answer_matches(document, batch.get_json())
    for field, value in violations(document, rows[0]):
        bad = {**rows[0], field: value}
        assert not component(document, "Instance").is_valid(bad), (field, value)
        refused = client.post("/api/v1/predict", json=bad)
        assert refused.status_code == 400, (field, value)
        assert [e["field"] for e in refused.get_json()["errors"]] == [field]

    tensors = at(document, "paths", "/v2/models/{name}/infer", "post", "requestBody", "content",
                 "application/json", "examples", "single", "value")
    assert [t["name"] for t in tensors["inputs"]] == instance_schema["required"]
    answered = client.post(f"/v2/models/{kind.name}/infer", json=tensors)
    assert answered.status_code == 200, answered.get_data(as_text=True)
    component(document, "V2InferResponse").validate(answered.get_json())
    assert [o["name"] for o in answered.get_json()["outputs"]] == outputs


def test_the_documents_answer_schemas_are_the_response_structs():
    """Rows of a batch and V2's response and output tensors: the structs' fields, no more."""
    for schema in (DIAMONDS, from_metadata({"task": "regression", "features": [
            {"name": "x", "type": "number", "min": 0, "max": 1}]})):
        schemas = openapi.document(schema, 10)["components"]["schemas"]
        batch, struct = ("BatchValuePrediction", Value) if schema.regression \
            else ("BatchPrediction", Prediction)
        rows = schemas[batch]["properties"]["predictions"]["items"]
        assert (set(rows["properties"]), set(rows["required"])) == fields_of(struct)
    for name, struct in (("V2InferResponse", InferResponse), ("V2Output", OutputTensor)):
        described = TEMPLATE["components"]["schemas"][name]
        assert (set(described["properties"]), set(described["required"])) == fields_of(struct)


ODD_SIGNATURES = {
    "inferred": inferred(["a", "b"], Task.CLASSIFICATION, ["no", "yes"]),
    "odd bounds and defaults": from_metadata({"task": "regression", "features": [
        {"name": "nan default", "type": "number", "min": 0, "max": 5, "default": math.nan},
        {"name": "open above", "type": "number", "min": -math.inf, "max": math.inf},
        {"name": "fraction bounds", "type": "integer", "min": 0.5, "max": 3.5},
        {"name": "flag", "type": "boolean"},
        {"name": "one", "type": "category", "categories": ["only"]}]}),
}


@pytest.mark.parametrize("name", sorted(ODD_SIGNATURES))
def test_any_signature_gets_a_document_whose_examples_it_takes(name):
    """Unbounded numbers, a NaN default, infinite or fractional bounds: finite JSON, and the
    examples are valid by the document's own schemas."""
    schema = ODD_SIGNATURES[name]
    document = json.loads(msgspec.json.encode(openapi.document(schema, 5, "odd")))
    examples = at(document, "paths", "/api/v1/predict", "post", "requestBody", "content",
                  "application/json", "examples")
    component(document, "Instance").validate(examples["single"]["value"])
    component(document, "Batch").validate(examples["batch"]["value"])
    error = at(document, "paths", "/api/v1/predict", "post", "responses", "400", "content",
               "application/json", "example")
    component(document, "Error").validate(error)
    assert error["errors"] and all(e["field"] in schema.names for e in error["errors"])


def served_model(snapshot: str, schema, primary: str = "m") -> ServedModel:
    return ServedModel(snapshot, "pipeline", primary, {primary: "1.0.0"}, None, schema,
                       loaded_at=0.0, load_seconds=0.0, checks="")


def test_the_document_is_made_once_per_snapshot_and_never_fails():
    """The same bytes until another snapshot is served; a signature it cannot write gets the
    template, never an error."""
    documents = openapi.Documents()
    first = served_model("s1", DIAMONDS)
    started = time.perf_counter()
    made = documents.of(first, 1000)
    assert time.perf_counter() - started < 0.5
    assert documents.of(first, 1000) is made
    price = from_metadata({"task": "regression", "features": [
        {"name": "x", "type": "number", "min": 0, "max": 1}], "target": {"unit": "USD"}})
    other = json.loads(documents.of(served_model("s2", price, "price"), 1000))
    assert other["info"]["title"] == "price API" and "ValuePrediction" in \
        other["components"]["schemas"]
    unwritable = served_model("s3", DIAMONDS)
    object.__setattr__(unwritable, "schema", None)  # nothing a loader would hand over
    assert documents.of(unwritable, 1000) == openapi.TEMPLATE.read_bytes()


def test_without_a_model_the_demos_document_is_served(make_app):
    assert make_app().test_client().get("/api/v1/openapi.json").get_json() == TEMPLATE
