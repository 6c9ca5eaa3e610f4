"""The OpenAPI document of the served model: serving/openapi.json with its per-model parts
written from the snapshot's signature, once per loaded snapshot.

Per model: the title, the Instance (features, types, bounds, categories, all required), the Label
(the classes, or a regressor's number), the answers of its task (rows from the response structs
serving.http.api writes: Prediction, or Value), the V2 tensor names and outputs, the examples (the
400 one written by the checks themselves) and MAX_BATCH. Everything else is the template's. The
template is itself the demo classifier's document (a test keeps the two equal).
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
from flask import Blueprint, Response, current_app, request

from model_contract import logs
from serving.errors import InvalidInput
from serving.inputs.checks import encode, parse_body
from serving.inputs.schema import (
    DIAMONDS,
    UNBOUNDED,
    CategoricalFeature,
    NumericFeature,
    Schema,
    is_demo,
    tagline,
)
from serving.model.loader import ServedModel
from serving.oip.endpoints import input_metadata
from serving.oip.outputs import output_metadata, output_names

from .api import Prediction, Value
from .context import holder, settings

log = logs.get(__name__)
bp = Blueprint("openapi", __name__, url_prefix="/api/v1")
TEMPLATE = Path(__file__).parents[1] / "openapi.json"  # serving/openapi.json
DOCUMENTS = "serving.openapi"  # the app's extension key of its Documents
MAX_AGE = 60  # seconds a client may keep the document (a swap may change it)
DEMO_TITLE = "Diamond grader API"
DEMO_PURPOSE = "Predicts whether a diamond's cut grades Gold (Ideal or Premium) or Silver."
EXAMPLE_MODEL = "diamonds-classifier"  # the registry model named in examples without a model
ABOUT = ("Every answer names the model snapshot and versions that produced it. Limits: MAX_BATCH "
         "instances per batch (default 1000), MAX_BODY_BYTES per body (default 2 MiB). The "
         "features, their bounds and the answers are the served model's signature "
         "(GET /api/v1/model, docs/own-model.md).")
SCHEMAS = "#/components/schemas/"
PREDICTION_ID = {"type": "string", "pattern": "^[0-9a-f]{32}$",
                 "description": "Id of this prediction (batch row i: <id>-<i>), for POST "
                                "/api/v1/labels; also the X-Prediction-Id header"}
EXAMPLE_ID = "9b2f6c1e0d4a4f5e8c7b6a5d4c3b2a19"
# What the structs' field types cannot say: a class is a Label, a probability within [0, 1].
REFINED = {
    "label": {"$ref": SCHEMAS + "Label"},
    "probability": {"type": "number", "minimum": 0, "maximum": 1,
                    "description": "Probability of the predicted label"},
}


def document(schema: Schema, max_batch: int, name: str | None = None) -> dict[str, Any]:
    """The OpenAPI document for a model of this schema named `name` (None: no model loaded)."""
    made = json.loads(_template())  # a fresh copy: 20x faster than copy.deepcopy
    demo = is_demo(schema)
    made["info"]["title"] = DEMO_TITLE if demo else f"{name or 'Model'} API"
    made["info"]["description"] = f"{DEMO_PURPOSE if demo else tagline(schema) + '.'} {ABOUT}"
    examples = _Examples(schema, max_batch, name or EXAMPLE_MODEL)
    _write_predict(made["paths"]["/api/v1/predict"]["post"], schema, examples)
    _write_v2(made["paths"], schema, examples)
    components = made["components"]["schemas"]
    for answer in ("Prediction", "BatchPrediction", "ValuePrediction", "BatchValuePrediction"):
        components.pop(answer, None)
    components.update(Instance=instance_schema(schema), Label=label_schema(schema),
                      **answer_schemas(schema))
    components["Batch"]["properties"]["instances"]["maxItems"] = max_batch
    components["V2Tensor"]["properties"]["name"]["description"] = (
        "A feature's name (" + ", ".join(schema.names) + "), or any name for the one 2-D tensor")
    outputs = components["V2Output"]
    outputs["properties"]["name"]["enum"] = list(output_names(schema))
    outputs["description"] = "; ".join(f"{o['name']}: {o['datatype']} {o['shape']}"
                                       for o in output_metadata(schema))
    return made


@functools.cache
def _template() -> bytes:
    return TEMPLATE.read_bytes()


def instance_schema(schema: Schema) -> dict[str, Any]:
    """One instance: every feature, required, typed and bounded as the checks take it."""
    return {"type": "object", "additionalProperties": False, "required": list(schema.names),
            "properties": {f.name: feature_schema(f) for f in schema.features}}


def feature_schema(feature: NumericFeature | CategoricalFeature) -> dict[str, Any]:
    """One feature's JSON Schema: a number (bounds where finite), or one of its categories."""
    described = feature.label + (f" ({feature.unit})" if getattr(feature, "unit", "") else "")
    if isinstance(feature, CategoricalFeature):
        if feature.boolean:
            described += ': "true" or "false"'
        return {"type": "string", "enum": list(feature.categories), "description": described,
                "example": feature.default}
    bounds = {key: bound for key, bound in (("minimum", feature.minimum),
                                            ("maximum", feature.maximum))
              if math.isfinite(bound) and abs(bound) < UNBOUNDED}
    return {"type": feature.type_name, **bounds, "description": described,
            "example": example_number(feature)}


def example_number(feature: NumericFeature) -> float | int:
    """A valid value of a numeric feature: its default, else a finite bound (whole if it must)."""
    low, high, value = feature.minimum, feature.maximum, feature.default
    if not (math.isfinite(value) and low <= value <= high):
        value = next((b for b in (low, high) if math.isfinite(b)), 0.0)
    if not feature.integer:
        return value
    whole = math.floor(value)
    return whole if whole >= low else math.ceil(value)


def label_schema(schema: Schema) -> dict[str, Any]:
    """What a prediction answers and POST /api/v1/labels takes: a class, or a number."""
    if schema.regression:
        return {"type": "number", "description": "A value of the target"
                + (f", in {schema.unit}" if schema.unit else "")}
    return {"type": "string", "enum": list(schema.classes)}


def answer_schemas(schema: Schema) -> dict[str, dict[str, Any]]:
    """The task's answers, one and a batch; their rows' fields are the response struct's."""
    if schema.regression:
        row = _row(Value, {"value": {"type": "number", "description": "The predicted value"
                                     + (f", in {schema.unit}" if schema.unit else "")}})
        return {"ValuePrediction": {**_single(row), "description": "A regressor's answer"},
                "BatchValuePrediction": _batch(row)}
    row = _row(Prediction, REFINED)
    return {"Prediction": _single(row), "BatchPrediction": _batch(row)}


def _row(struct: type, refined: dict[str, Any]) -> dict[str, Any]:
    """A response struct's JSON Schema (its fields, their types), refined where it says more."""
    (_, ), definitions = msgspec.json.schema_components([struct])
    fields = definitions[struct.__name__]
    return {"type": "object", "required": fields["required"],
            "properties": {k: refined.get(k, v) for k, v in fields["properties"].items()}}


def _single(row: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "required": [*row["required"], "model", "prediction_id"],
            "properties": {**row["properties"], "model": {"$ref": SCHEMAS + "Model"},
                           "prediction_id": PREDICTION_ID}}


def _batch(row: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "required": ["predictions", "count", "model", "prediction_id"],
            "properties": {"predictions": {"type": "array", "items": row},
                           "count": {"type": "integer"}, "model": {"$ref": SCHEMAS + "Model"},
                           "prediction_id": PREDICTION_ID}}


@dataclass(frozen=True)
class _Examples:
    """The document's examples for one schema: instances, answers and refusals."""

    schema: Schema
    max_batch: int
    name: str

    def instance(self) -> dict[str, Any]:
        """A valid instance: each feature's example value."""
        return {f.name: example_number(f) if isinstance(f, NumericFeature) else f.default
                for f in self.schema.features}

    def another(self) -> dict[str, Any]:
        """A second valid instance: each category at another of its values."""
        return {name: _other_category(feature, value)
                if isinstance(feature := self.schema.feature(name), CategoricalFeature)
                else value for name, value in self.instance().items()}

    def answers(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """One answer and a batch's, as the task writes them."""
        model = {"version": "1.1.0", "snapshot": "20260101T120000Z-3fa2c1",
                 "versions": {self.name: "1.1.0"}, "role": "champion"}
        if self.schema.regression:
            rows: list[dict[str, Any]] = [{"value": 4785.31}, {"value": 912.5}]
        else:
            classes = self.schema.classes
            rows = [{"label": classes[0], "probability": 0.912},
                    {"label": classes[-1], "probability": 0.655}]
        return ({**rows[0], "model": model, "prediction_id": EXAMPLE_ID},
                {"predictions": rows, "count": len(rows), "model": model,
                 "prediction_id": EXAMPLE_ID})

    def invalid(self) -> dict[str, Any]:
        """The 400 answer to an instance with a number out of bounds and an unknown category."""
        instance = self.instance()
        numbers = [f for f in self.schema.features if isinstance(f, NumericFeature)]
        categories = [f for f in self.schema.features if isinstance(f, CategoricalFeature)]
        if numbers:
            high = numbers[0].maximum
            above = high + max(1.0, abs(high))
            instance[numbers[0].name] = above if math.isfinite(above) and numbers[0].bounded \
                else "heavy"
        if categories:
            instance[categories[0].name] = "?" + "".join(categories[0].categories)[:8]
        try:
            encode(self.schema, [instance], single=True)
        except InvalidInput as exc:
            return _error("invalid_input", f"{len(exc.errors)} invalid field(s)", exc)
        raise AssertionError("an invalid example was taken")  # numbers or categories: both refused

    def too_many(self) -> dict[str, Any]:
        """The 413 answer to a batch one instance over MAX_BATCH."""
        try:
            parse_body({"instances": [{}] * (self.max_batch + 1)}, self.schema, self.max_batch)
        except InvalidInput as exc:
            return _error("batch_too_large", f"too many instances: {exc.errors[0].message}", exc)
        raise AssertionError("a batch over MAX_BATCH was taken")


def _other_category(feature: CategoricalFeature, value: str) -> str:
    return next((c for c in feature.categories if c != value), value)


def _error(code: str, message: str, exc: InvalidInput) -> dict[str, Any]:
    return {"error": code, "message": message, "errors": [e.to_json() for e in exc.errors]}


def _write_predict(predict: dict[str, Any], schema: Schema, examples: _Examples) -> None:
    """POST /api/v1/predict's examples and answers, for the schema's task."""
    requests = predict["requestBody"]["content"]["application/json"]["examples"]
    requests["single"]["value"] = examples.instance()
    requests["batch"]["value"] = {"instances": [examples.instance(), examples.another()]}
    answered = predict["responses"]["200"]["content"]["application/json"]
    names = ["ValuePrediction", "BatchValuePrediction"] if schema.regression \
        else ["Prediction", "BatchPrediction"]
    answered["schema"] = {"oneOf": [{"$ref": SCHEMAS + n} for n in names]}
    single, batch = examples.answers()
    answered["examples"] = {"single": {"value": single}, "batch": {"value": batch}}
    refusals = predict["responses"]
    refusals["400"]["content"]["application/json"]["example"] = examples.invalid()
    refusals["413"]["content"]["application/json"]["example"] = examples.too_many()


def _write_v2(paths: dict[str, Any], schema: Schema, examples: _Examples) -> None:
    """The V2 model metadata's description and the infer request's example tensors."""
    outputs = ", ".join(f"{o['name']} ({o['datatype']}, shape {o['shape']})"
                        for o in output_metadata(schema))
    classes = "" if schema.regression else f"; classes in this order: {', '.join(schema.classes)}"
    paths["/v2/models/{name}"]["get"]["description"] = (
        "One input per feature in column order (FP64 for numbers, INT64 for whole numbers, BYTES "
        f"for categories, shape [-1]); outputs {outputs}{classes}.")
    instance = examples.instance()
    tensors = [{"name": t["name"], "shape": [1], "datatype": t["datatype"],
                "data": [instance[t["name"]]]} for t in input_metadata(schema)]
    infer = paths["/v2/models/{name}/infer"]["post"]["requestBody"]["content"]
    infer["application/json"]["examples"]["single"]["value"] = {"inputs": tensors}


class Documents:
    """The document of the snapshot last asked about, as bytes (one per app and worker)."""

    def __init__(self) -> None:
        self._kept: tuple[str | None, int, bytes] | None = None

    def of(self, model: ServedModel | None, max_batch: int) -> bytes:
        """The served model's document (the demo's without a model), made once per snapshot."""
        key = model.snapshot if model is not None else None
        kept = self._kept
        if kept is None or kept[:2] != (key, max_batch):
            kept = self._kept = (key, max_batch, _written(model, max_batch))
        return kept[2]


def _written(model: ServedModel | None, max_batch: int) -> bytes:
    """The document's bytes; the template's if it cannot be made (logged): never a 500."""
    try:
        if model is None:
            return msgspec.json.encode(document(DIAMONDS, max_batch))
        return msgspec.json.encode(document(model.schema, max_batch, model.primary))
    except Exception as exc:  # a signature this module did not foresee: a bug, said once
        log.error("openapi_failed", snapshot=model.snapshot if model else None,
                  error_type=type(exc).__name__, error=str(exc))
        return _template()


@bp.get("/openapi.json")
def openapi():
    """The OpenAPI document of this API, for the served model."""
    documents = current_app.extensions.setdefault(DOCUMENTS, Documents())
    body = documents.of(holder().live, settings().max_batch)
    response = Response(body, mimetype="application/json")
    response.set_etag(hashlib.blake2b(body, digest_size=16).hexdigest())
    response.cache_control.public = True
    response.cache_control.max_age = MAX_AGE
    return response.make_conditional(request)
