"""POST /api/v1/labels: the true label of an earlier prediction, forwarded to Comet MPM.

Public, so bounded by what a caller must hold and how often it may call: the prediction id must
be one this service signed for the version the label names
(serving.telemetry.prediction_ids), at most LABELS_PER_SECOND signed labels are accepted per
worker (429 past it; refused ones are not counted, so they cannot crowd out real ones), and
accepted labels wait on a queue of their own (503 when full) that the MPM sender serves after
prediction events.
"""

from __future__ import annotations

import math
import re
from typing import Any

from flask import Blueprint, current_app

from serving.errors import FieldError, InvalidInput
from serving.inputs.checks import MAX_REPORTED
from serving.telemetry.mpm_events import monitor

from .api import read_json
from .context import error_response, holder, json_response, roles
from .webhook import RateLimit

bp = Blueprint("labels", __name__, url_prefix="/api/v1")
# Our ids: 32 hex digits, and -<index> for a batch's rows.
PREDICTION_ID = re.compile(r"[0-9a-f]{32}(-[0-9]{1,6})?")
VERSION = re.compile(r"[0-9A-Za-z][0-9A-Za-z.+-]{0,63}")
FIELDS = ("prediction_id", "label", "version")
LIMIT = "serving.labels_limit"


@bp.record_once
def _set_up(state) -> None:
    """Per app: an empty rate window."""
    config = state.app.extensions["serving.settings"].mpm
    state.app.extensions[LIMIT] = RateLimit(config.labels_per_second, window=1.0)


@bp.post("/labels")
def post_label():
    """Forward {"prediction_id", "label", "version"?} to MPM: 202; 400 naming the field; 429."""
    sender = monitor()
    if not sender.enabled:
        return error_response(404, "monitoring_off", "labels are forwarded to Comet MPM, "
                                                     "which is off here (MPM_ENABLED=false)")
    model = holder().require()
    prediction_id, label, version = parse_label(read_json(), model.schema.classes,
                                                model.schema.regression)
    version = signed_version(sender, prediction_id, version, model.version)
    # Counted after the signature: made-up labels cannot use up the room of real ones.
    if current_app.extensions[LIMIT].admit():
        response = error_response(429, "too_many_requests", "over LABELS_PER_SECOND="
                                  f"{sender.config.labels_per_second} labels a second")
        response.headers["Retry-After"] = "1"
        return response
    if not sender.record_label(model, prediction_id, label, version):
        response = error_response(503, "mpm_queue_full", "the MPM labels queue is full; "
                                                         "retry later")
        response.headers["Retry-After"] = "1"
        return response
    return json_response({"prediction_id": prediction_id, "label": label, "model": model.primary,
                          "version": version, "forwarded": True}, 202)


def signed_version(sender: Any, prediction_id: str, given: str | None, served: str) -> str:
    """The version the id was issued for: the one given, else the champion's or the
    challenger's; InvalidInput naming prediction_id when it verifies for none."""
    challenger = roles().challenger.held
    candidates = [given] if given else [served] + ([challenger.model.version] if challenger
                                                   else [])
    refusals = [sender.ids.refusal(prediction_id, v) for v in candidates]
    for version, refusal in zip(candidates, refusals, strict=True):
        if refusal is None:
            return version
    raise InvalidInput([FieldError("prediction_id", refusals[0] + " (send the id and the "
                                                                   "version its answer named)")])


def parse_label(body: Any, classes: tuple[str, ...], regression: bool = False
                ) -> tuple[str, Any, str | None]:
    """(prediction id, label, version or None) from the body; InvalidInput names what is wrong.

    A regressor's label is its true value: a finite number."""
    if not isinstance(body, dict):
        raise InvalidInput([FieldError("body", 'must be a JSON object: {"prediction_id": ..., '
                                               '"label": ...}')])
    unknown = sorted(k for k in body if k not in FIELDS)
    errors = [FieldError(k, "is not allowed") for k in unknown[:MAX_REPORTED]]
    prediction_id, label, version = (body.get(k) for k in FIELDS)
    if not isinstance(prediction_id, str) or not PREDICTION_ID.fullmatch(prediction_id):
        errors.append(FieldError("prediction_id", "must be a prediction id this service "
                                                  "returned (32 hex digits, -N for a batch row)"))
    if regression:
        if type(label) not in (int, float) or not math.isfinite(label):
            errors.append(FieldError("label", "must be the true value, a finite number"))
    elif label not in classes:
        errors.append(FieldError("label", f"must be one of {', '.join(classes)}"))
    if version is not None and (not isinstance(version, str) or not VERSION.fullmatch(version)):
        errors.append(FieldError("version", "must be a model version such as 1.2.0"))
    if errors:
        raise InvalidInput(errors, truncated=len(unknown) > MAX_REPORTED)
    return prediction_id, label, version
