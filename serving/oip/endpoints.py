"""The Open Inference Protocol (V2, as KServe, MLServer and Triton speak it) beside /api/v1.

Health, server and model metadata, and POST /v2/models/{name}/infer with the same validation,
roles (champion, shadow, canary), hot swap, metrics and MPM as /api/v1/predict. The model's
name is the registry model that holds the classifier (serving.oip.wire reads bodies,
serving.oip.tensors turns tensors into rows, serving.oip.outputs writes the answer's tensors,
JSON or binary); errors are the protocol's
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
from serving.challenger.shadow import ModelInput
from serving.http.api import read_any_body
from serving.http.context import Services, client_key, holder, model_headers, services, settings
from serving.http.replies import Reply, flask_response
from serving.inputs.schema import CategoricalFeature, Schema
from serving.model.loader import ServedModel
from serving.swap.holder import ModelHolder
from serving.telemetry import metrics

from ..errors import BatchTooLarge, InvalidInput, NoModel, PredictionTimeout
from .outputs import InferResponse, forms_of, output_metadata, outputs_of, written
from .tensors import rows_of
from .wire import V2Error, parse_request, shown

log = logs.get(__name__)
bp = Blueprint("v2", __name__, url_prefix="/v2")
SERVER = "comet-registry-sync"
EXTENSIONS = ["binary_tensor_data"]  # inputs, and outputs when asked (serving.oip.outputs)
_ENCODER = msgspec.json.Encoder()


def input_metadata(schema: Schema) -> list[dict[str, Any]]:
    """The inputs the model takes, as model metadata lists them: one tensor per feature."""
    return [{"name": f.name, "datatype": "BYTES" if isinstance(f, CategoricalFeature)
             else "INT64" if f.integer else "FP64", "shape": [-1]} for f in schema.features]


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
    forms = forms_of(body, model.schema)
    rows = rows_of(body, model.schema, parts.settings.max_batch)
    # Another role's schema re-encodes the rows; its refusal is InvalidInput, as in /api/v1.
    given = ModelInput(rows.matrix(model.schema), model.schema, rows.encode)
    both = parts.roles
    answer = both.predict(given, key)
    model = answer.model
    metrics.PREDICTIONS.labels("v2", model.version).inc(rows.count)
    prediction_id = parts.monitor.new_id(model.version)
    outputs, sections = outputs_of(answer, rows, prediction_id, forms, parts.monitor)
    payload = InferResponse(model.primary, model.version, outputs,
                            {"role": answer.role.value, "snapshot": model.snapshot,
                             "prediction_id": prediction_id}, body.id)
    content, binary_headers, content_type = written(payload, sections)
    headers = [*model_headers(model, answer.role.value).items(),
               ("X-Prediction-Id", prediction_id), *binary_headers]
    return Reply(content, headers, lambda: both.shadow(answer, given), content_type)


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
