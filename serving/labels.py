"""POST /api/v1/labels: the true label of an earlier prediction, forwarded to Comet MPM."""

from __future__ import annotations

import re
from typing import Any

from flask import Blueprint

from .api import read_json
from .context import error_response, holder, json_response
from .errors import FieldError, InvalidInput
from .monitoring import monitor

bp = Blueprint("labels", __name__, url_prefix="/api/v1")
# Our ids: 32 hex digits, and -<index> for a batch's rows.
PREDICTION_ID = re.compile(r"[0-9a-f]{32}(-[0-9]{1,6})?")
VERSION = re.compile(r"[0-9A-Za-z][0-9A-Za-z.+-]{0,63}")
FIELDS = ("prediction_id", "label", "version")


@bp.post("/labels")
def post_label():
    """Forward {"prediction_id", "label", "version"?} to MPM: 202, or 400 naming the field."""
    sender = monitor()
    if not sender.enabled:
        return error_response(404, "monitoring_off", "labels are forwarded to Comet MPM, "
                                                     "which is off here (MPM_ENABLED=false)")
    model = holder().require()
    prediction_id, label, version = parse_label(read_json(), model.schema.classes)
    version = version or model.version
    if not sender.record_label(model, prediction_id, label, version):
        response = error_response(503, "mpm_queue_full", "the MPM queue is full; retry later")
        response.headers["Retry-After"] = "1"
        return response
    return json_response({"prediction_id": prediction_id, "label": label, "model": model.primary,
                          "version": version, "forwarded": True}, 202)


def parse_label(body: Any, classes: tuple[str, ...]) -> tuple[str, str, str | None]:
    """(prediction id, label, version or None) from the body; InvalidInput names what is wrong."""
    if not isinstance(body, dict):
        raise InvalidInput([FieldError("body", 'must be a JSON object: {"prediction_id": ..., '
                                               '"label": ...}')])
    errors = [FieldError(k, "is not allowed") for k in sorted(body) if k not in FIELDS]
    prediction_id, label, version = (body.get(k) for k in FIELDS)
    if not isinstance(prediction_id, str) or not PREDICTION_ID.fullmatch(prediction_id):
        errors.append(FieldError("prediction_id", "must be a prediction id this service "
                                                  "returned (32 hex digits, -N for a batch row)"))
    if label not in classes:
        errors.append(FieldError("label", f"must be one of {', '.join(classes)}"))
    if version is not None and (not isinstance(version, str) or not VERSION.fullmatch(version)):
        errors.append(FieldError("version", "must be a model version such as 1.2.0"))
    if errors:
        raise InvalidInput(errors)
    return prediction_id, label, version
