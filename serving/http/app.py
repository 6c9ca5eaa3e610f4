"""The application factory, and the one place where errors become HTTP answers."""

from __future__ import annotations

import dataclasses
import io
import logging
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flask import Flask, render_template, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from model_contract import logs
from serving import config
from serving.challenger.candidate import ChallengerHolder
from serving.challenger.experiment_log import VerdictSender
from serving.challenger.roles import Roles
from serving.errors import BatchTooLarge, FieldError, InvalidInput, NoModel, PredictionTimeout
from serving.http import api, context, labels, openapi, ops, web, webhook
from serving.http.lean import STARTED, LeanPredictions
from serving.oip import endpoints as oip
from serving.swap.holder import ModelHolder
from serving.telemetry import metrics
from serving.telemetry.mpm_events import MONITOR, Monitor
from serving.telemetry.prediction_ids import PredictionIds, key_from

from .context import HOLDER, RELOAD_TOKEN_SOURCE, ROLES, SETTINGS, error_response, holder
from .token import ReloadToken

log = logs.get(__name__)
PACKAGE = Path(__file__).resolve().parents[1]  # serving/
STARTUP_WAIT = 15.0  # at most, for a verdict at a worker's start (a worker's request timeout: 30 s)
READ_CHUNK = 64 * 1024
DRAIN_FACTOR = 4  # after a 413, read on up to this many times the limit so the client sees it


def create_app(settings: config.ServingConfig | Mapping[str, Any] | None = None) -> Flask:
    """Create the serving app: settings, the model holder (loaded, watching), the blueprints."""
    settings = config.load(settings)
    if settings.validation_dir is None:  # one process: a folder of its own (the master sets one)
        settings = dataclasses.replace(
            settings, validation_dir=Path(tempfile.mkdtemp(prefix="serving-validations-")))
    logs.setup(settings.log_level)
    logs.redact(settings.reload_token)
    logs.redact(settings.mpm.api_key)
    logs.redact(settings.challenger.api_key)
    app = Flask(__name__, root_path=str(PACKAGE))  # templates/ and static/ beside serving/
    app.config.update(MAX_CONTENT_LENGTH=settings.max_body_bytes)
    models = ModelHolder(settings)
    app.extensions[SETTINGS], app.extensions[HOLDER] = settings, models
    ids = PredictionIds(key_from(settings.reload_token), settings.mpm.labels_max_age)
    app.extensions[MONITOR] = Monitor(settings.mpm, settings.model_root, ids=ids)  # started on use
    app.extensions[RELOAD_TOKEN_SOURCE] = ReloadToken(settings.reload_token,
                                                      settings.reload_token_file)
    challenger = ChallengerHolder(settings, verdict=lambda snapshot_id:
                                  models.checks.wait(snapshot_id, 0.0))
    roles = app.extensions[ROLES] = Roles(settings, models, challenger)
    if settings.challenger.verdict_enabled:
        roles.verdict = VerdictSender(settings, roles)
    for blueprint in (web.bp, api.bp, openapi.bp, oip.bp, labels.bp, ops.bp, webhook.bp):
        app.register_blueprint(blueprint)
    app.add_template_filter(_number, "num")
    for error, handler in ERROR_HANDLERS:
        app.register_error_handler(error, handler)
    app.before_request(_begin)  # one hook: each costs Flask a few microseconds per request
    app.after_request(_observe)
    # The validator first (bounded wait: a worker that boots too long is not serving; the
    # watcher takes over). A refusal is logged and kept; readiness stays 503 until a good one.
    roles.converge(wait=min(settings.validation_wait, STARTUP_WAIT))
    if settings.watch:
        roles.start()
    # Plain predictions skip Flask's request cycle (same answers); the rest reach Flask.
    app.wsgi_app = LeanPredictions(app)  # type: ignore[method-assign]
    return app


def _number(value: Any) -> Any:
    """Floats as people write them (0.7, 2400), anything else unchanged."""
    return format(value, ".10g") if isinstance(value, float) else value


def _begin() -> None:
    """Start the request's clock, and bound a chunked body."""
    environ = request.environ
    environ[STARTED] = time.perf_counter()
    if not environ.get("CONTENT_LENGTH") and "chunked" in \
            environ.get("HTTP_TRANSFER_ENCODING", "").lower():
        _bound_chunked_body(environ)


def _bound_chunked_body(environ: dict) -> None:
    """Read a chunked body (no Content-Length) here: over MAX_BODY_BYTES is 413, never cut.

    gunicorn marks its input as terminated, and werkzeug then stops reading at the limit
    without saying so: a JSON body was cut short (400) or a form parsed on a prefix.
    """
    limit = context.settings().max_body_bytes
    stream = environ["wsgi.input"]
    body = _read_up_to(stream, limit + 1)
    if len(body) > limit:
        _read_up_to(stream, DRAIN_FACTOR * limit, keep=False)
        raise RequestEntityTooLarge()
    environ["wsgi.input"], environ["CONTENT_LENGTH"] = io.BytesIO(body), str(len(body))


def _read_up_to(stream, most: int, keep: bool = True) -> bytes:
    """Up to `most` bytes of a stream (or none kept, when draining)."""
    parts, count = [], 0
    while count < most:
        part = stream.read(min(READ_CHUNK, most - count))
        if not part:
            break
        count += len(part)
        if keep:
            parts.append(part)
    return b"".join(parts)


def _observe(response):
    current = request._get_current_object()  # one context lookup, not one per attribute
    seconds = time.perf_counter() - current.environ.get(STARTED, time.perf_counter())
    endpoint = current.endpoint or "unmatched"
    metrics.observe_request(endpoint, response.status_code, seconds)
    if log.enabled(logging.DEBUG):
        log.debug("request", method=current.method, path=current.path, endpoint=endpoint,
                  status=response.status_code, ms=round(seconds * 1000, 3))
    return response


def _wants_html() -> bool:
    if request.blueprint == "web":
        return True
    if request.blueprint in ("api", "labels", "ops"):
        return False
    best = request.accept_mimetypes.best_match(["application/json", "text/html"])
    return best == "text/html" and request.accept_mimetypes[best] > \
        request.accept_mimetypes["application/json"]


def _page(status: int, title: str, message: str, headers: dict[str, str] | None = None):
    body = render_template("error.html", status=status, title=title, message=message,
                           model=holder().live)
    return body, status, {**web.SECURITY_HEADERS, **(headers or {})}


def _invalid_input(exc: InvalidInput):
    if isinstance(exc, BatchTooLarge):  # one "field" would read as a typo: say what is too large
        return error_response(413, "batch_too_large", f"too many instances: "
                              f"{exc.errors[0].message}", exc.errors)
    extra = {"truncated": True} if exc.truncated else {}
    message = f"{len(exc.errors)} invalid field(s)" + (" (first ones shown)" if exc.truncated
                                                        else "")
    return error_response(400, "invalid_input", message, exc.errors, **extra)


def _no_model(exc: NoModel):
    response = error_response(503, "no_model", exc.reason)
    response.headers["Retry-After"] = "1"
    return response


def _timeout(exc: PredictionTimeout):
    """504 to the client whose input the model could not answer in time (others are answered)."""
    message = f"{exc}: no prediction for this input"
    if _wants_html():
        return _page(504, "Prediction timed out", message)
    return error_response(504, "prediction_timeout", message)


def _http_error(exc: HTTPException):
    status = exc.code or 500
    title, message = exc.name, exc.description or exc.name
    if status == 413:
        message = f"the request body is larger than {context.settings().max_body_bytes} bytes"
    allow = {k: v for k, v in exc.get_headers() if k == "Allow"}
    if _wants_html():
        return _page(status, title, message, allow)
    fields = None
    if status in (413, 415):
        fields = [FieldError("body" if status == 413 else "Content-Type", message)]
    response = error_response(status, title.lower().replace(" ", "_"), message, fields)
    response.headers.update(allow)
    return response


def _unexpected(exc: Exception):
    log.error("request_failed", path=request.path, error_type=type(exc).__name__, error=str(exc))
    if _wants_html():
        return _page(500, "Internal error", "Something went wrong on our side; the error has "
                                            "been logged.")
    return error_response(500, "internal_error", "internal error; it has been logged")


ERROR_HANDLERS = ((InvalidInput, _invalid_input), (NoModel, _no_model),
                  (PredictionTimeout, _timeout),
                  (HTTPException, _http_error), (Exception, _unexpected))
