"""The Open Inference Protocol (V2, as KServe, MLServer and Triton speak it) beside /api/v1.

Health, server and model metadata, and POST /v2/models/{name}/infer with the same validation,
roles (champion, shadow, canary), hot swap, metrics and MPM as /api/v1/predict. The model's
name is the registry model that holds the classifier (serving.oip.wire reads bodies,
serving.oip.tensors turns tensors into rows); errors are the protocol's
{"error": "..."} with 400 (naming the input), 404 (another model or version), 413, 503 or 504.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import metadata
from typing import Any

import msgspec
from flask import Blueprint, Response, request
from werkzeug.exceptions import HTTPException

from model_contract import logs
from serving.challenger.roles import Answer
from serving.challenger.shadow import ModelInput
from serving.http.api import read_any_body
from serving.http.context import Services, client_key, holder, model_headers, services, settings
from serving.http.replies import Reply, flask_response
from serving.inputs.schema import CategoricalFeature, Schema
from serving.model.loader import ServedModel
from serving.model.predictions import Task
from serving.swap.holder import ModelHolder
from serving.telemetry import metrics
from serving.telemetry.mpm_events import Monitor, monitor

from ..errors import BatchTooLarge, InvalidInput, NoModel, PredictionTimeout
from .tensors import Rows, rows_of
from .wire import InferRequest, V2Error, parse_request, shown

log = logs.get(__name__)
bp = Blueprint("v2", __name__, url_prefix="/v2")
SERVER = "comet-registry-sync"
EXTENSIONS = ["binary_tensor_data"]  # inputs only: outputs are always answered as JSON
_ENCODER = msgspec.json.Encoder()


class OutputTensor(msgspec.Struct, gc=False):
    """One output tensor of an answer."""

    name: str
    datatype: str
    shape: list[int]
    data: list[Any]


class InferResponse(msgspec.Struct, omit_defaults=True, gc=False):
    """The answer to POST /v2/models/{name}/infer."""

    model_name: str
    model_version: str
    outputs: list[OutputTensor]
    parameters: dict[str, Any]
    id: str | None = None


def outputs_of(answer: Answer, rows: Rows, prediction_id: str,
               sender: Monitor | None = None) -> list[OutputTensor]:
    """Offer the answer to MPM and write its output tensors: the one place reading predictions.

    A classifier's `label` and `probability` (of that label) as /api/v1/predict answers them,
    and `probabilities` per class (the schema's class order) where the answer holds them; a
    regressor's `value`.
    """
    model, answers = answer.model, answer.predictions
    count = answers.rows
    # Rows of a request of several rows have the ids <prediction_id>-<i>, as a batch's do.
    (sender or monitor()).record(model, prediction_id, lambda: rows.rows, answers, count != 1)
    if answers.task is Task.REGRESSION:
        return [OutputTensor("value", "FP64", [count], list(answers.values))]
    tensors = [OutputTensor("label", "BYTES", [count], list(answers.labels)),
               OutputTensor("probability", "FP64", [count], list(answers.probabilities))]
    classes = model.schema.classes
    if answers.class_probabilities is not None:
        flat = answers.class_table(classes)
        if flat is None:  # classes named otherwise than the schema's: row by row, as before
            table = [answers.per_class(i) or {} for i in range(count)]
            flat = [row[c] for row in table for c in classes]
        tensors.append(OutputTensor("probabilities", "FP64", [count, len(classes)], flat))
    return tensors


def output_names(schema: Schema) -> tuple[str, ...]:
    """The names of the outputs a model of this schema answers."""
    if schema.regression:
        return ("value",)
    return ("label", "probability", "probabilities")


def input_metadata(schema: Schema) -> list[dict[str, Any]]:
    """The inputs the model takes, as model metadata lists them: one tensor per feature."""
    return [{"name": f.name, "datatype": "BYTES" if isinstance(f, CategoricalFeature)
             else "INT64" if f.integer else "FP64", "shape": [-1]} for f in schema.features]


def output_metadata(schema: Schema) -> list[dict[str, Any]]:
    """The outputs the model answers, as model metadata lists them (see outputs_of)."""
    if schema.regression:
        return [{"name": "value", "datatype": "FP64", "shape": [-1]}]
    return [{"name": "label", "datatype": "BYTES", "shape": [-1]},
            {"name": "probability", "datatype": "FP64", "shape": [-1]},
            {"name": "probabilities", "datatype": "FP64", "shape": [-1, len(schema.classes)]}]


def _json(payload: Any, status: int | None = None, headers: Any = None) -> Response:
    return Response(_ENCODER.encode(payload), status=status, headers=headers,
                    content_type="application/json")


def _served(name: str, version: str | None = None,
            models: ModelHolder | None = None) -> ServedModel:
    """The live champion if it is the model (and version) asked for; else 404."""
    model = (models or holder()).require()
    if name != model.primary:
        raise V2Error(f"model {shown(name)} is not served here; this server serves "
                      f"{model.primary!r}", 404)
    if version is not None and version != model.version:
        raise V2Error(f"version {shown(version)} of {model.primary!r} is not served; "
                      f"{model.version!r} is", 404)
    return model


@bp.get("/health/live")
def live():
    """The server is up (its process answers)."""
    return _json({"live": True})


@bp.get("/health/ready")
def ready():
    """Ready when a model is loaded: 200, else 503."""
    loaded = holder().live is not None
    return _json({"ready": loaded}, 200 if loaded else 503)


@bp.get("")
def server_metadata():
    """The server's name, version and protocol extensions."""
    try:
        version = metadata.version(SERVER)
    except metadata.PackageNotFoundError:
        version = "unknown"
    return _json({"name": SERVER, "version": version, "extensions": EXTENSIONS})


@bp.get("/models/<name>")
@bp.get("/models/<name>/versions/<version>")
def model_metadata(name: str, version: str | None = None):
    """Inputs (one tensor per feature, in column order) and outputs of the served model."""
    model = _served(name, version)
    return _json({"name": model.primary, "versions": [model.version], "platform": "sklearn",
                  "inputs": input_metadata(model.schema),
                  "outputs": output_metadata(model.schema)})


@bp.get("/models/<name>/ready")
@bp.get("/models/<name>/versions/<version>/ready")
def model_ready(name: str, version: str | None = None):
    """200 when this model (and version) is the one served."""
    model = _served(name, version)
    return _json({"name": model.primary, "ready": True})


@bp.post("/models/<name>/infer")
@bp.post("/models/<name>/versions/<version>/infer")
def infer(name: str, version: str | None = None):
    """Tensors in, one prediction per row out, through the same roles as /api/v1/predict."""
    parts = services()
    _served(name, version, parts.holder)  # 404 or 503 before the body is read
    return flask_response(infer_reply(parts, name, version, read_any_body(), request.environ,
                                      client_key))


def infer_reply(parts: Services, name: str, version: str | None, raw: bytes,
                environ: dict[str, Any], key: Callable[[], str]) -> Reply:
    """The infer endpoint's answer to a body (for Flask's view and serving.http.lean alike)."""
    model = _served(name, version, parts.holder)
    body = parse_request(raw, environ.get("HTTP_INFERENCE_HEADER_CONTENT_LENGTH"))
    wanted = _wanted_outputs(body, model.schema)
    rows = rows_of(body, model.schema, parts.settings.max_batch)
    # Another role's schema re-encodes the rows; its refusal is InvalidInput, as in /api/v1.
    given = ModelInput(rows.matrix(model.schema), model.schema, rows.encode)
    both = parts.roles
    answer = both.predict(given, key)
    model = answer.model
    metrics.PREDICTIONS.labels("v2", model.version).inc(rows.count)
    prediction_id = parts.monitor.new_id(model.version)
    outputs = [t for t in outputs_of(answer, rows, prediction_id, parts.monitor)
               if wanted is None or t.name in wanted]
    payload = InferResponse(model.primary, model.version, outputs,
                            {"role": answer.role.value, "snapshot": model.snapshot,
                             "prediction_id": prediction_id}, body.id)
    headers = [*model_headers(model, answer.role.value).items(),
               ("X-Prediction-Id", prediction_id)]
    return Reply(_ENCODER.encode(payload), headers, lambda: both.shadow(answer, given))


def _wanted_outputs(body: InferRequest, schema: Schema) -> set[str] | None:
    """The output names the request asks for (None: all); V2Error for an unknown one."""
    if not body.outputs:
        return None
    known = set(output_names(schema))
    wanted = {output.name for output in body.outputs}
    unknown = sorted(wanted - known)
    if unknown:
        raise V2Error(f"output {shown(unknown[0])} is not an output of this model "
                      f"(outputs: {', '.join(sorted(known))})")
    return wanted


def _error(status: int, message: str, headers: Any = None) -> Response:
    return _json({"error": message}, status, headers)


@bp.errorhandler(V2Error)
def _refused(exc: V2Error):
    return _error(exc.status, exc.message)


@bp.errorhandler(InvalidInput)
def _invalid(exc: InvalidInput):
    first = exc.errors[0] if exc.errors else None
    where = f"input {shown(first.field)} " if first else ""
    status = 413 if isinstance(exc, BatchTooLarge) else 400
    return _error(status, where + (first.message if first else "is invalid"))


@bp.errorhandler(NoModel)
def _no_model(exc: NoModel):
    return _error(503, exc.reason, {"Retry-After": "1"})


@bp.errorhandler(PredictionTimeout)
def _timeout(exc: PredictionTimeout):
    return _error(504, f"{exc}: no prediction for this input")


@bp.errorhandler(HTTPException)
def _http(exc: HTTPException):
    status = exc.code or 500
    message = exc.description or exc.name
    if status == 413:
        message = f"the request body is larger than {settings().max_body_bytes} bytes"
    return _error(status, message)


@bp.errorhandler(Exception)
def _unexpected(exc: Exception):
    log.error("request_failed", path=request.path, error_type=type(exc).__name__, error=str(exc))
    return _error(500, "internal error; it has been logged")
