"""The application factory, and the one place where errors become HTTP answers."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Mapping
from typing import Any

from flask import Flask, g, render_template, request
from werkzeug.exceptions import HTTPException

from model_contract import logs

from . import api, config, context, metrics, ops, web
from .context import HOLDER, SETTINGS, error_response, holder
from .errors import BatchTooLarge, FieldError, InvalidInput, ModelRejected, NoModel
from .holder import ModelHolder

log = logs.get(__name__)


def create_app(settings: config.ServingConfig | Mapping[str, Any] | None = None) -> Flask:
    """Create the serving app: settings, the model holder (loaded, watching), the blueprints."""
    settings = config.load(settings)
    logs.setup(settings.log_level)
    logs.redact(settings.reload_token)
    app = Flask(__name__)
    app.config.update(MAX_CONTENT_LENGTH=settings.max_body_bytes)
    models = ModelHolder(settings)
    app.extensions[SETTINGS], app.extensions[HOLDER] = settings, models
    for blueprint in (web.bp, api.bp, ops.bp):
        app.register_blueprint(blueprint)
    app.add_template_filter(_number, "num")
    for error, handler in ERROR_HANDLERS:
        app.register_error_handler(error, handler)
    app.before_request(_start_clock)
    app.after_request(_observe)
    # A refusal is logged and kept in last_rejection; readiness stays 503 until a good one.
    with contextlib.suppress(ModelRejected):
        models.converge()
    if settings.watch:
        models.start()
    return app


def _number(value: Any) -> Any:
    """Floats as people write them (0.7, 2400), anything else unchanged."""
    return format(value, ".10g") if isinstance(value, float) else value


def _start_clock() -> None:
    g.started = time.perf_counter()


def _observe(response):
    seconds = time.perf_counter() - g.get("started", time.perf_counter())
    endpoint = request.endpoint or "unmatched"
    metrics.observe_request(endpoint, response.status_code, seconds)
    log.debug("request", method=request.method, path=request.path, endpoint=endpoint,
              status=response.status_code, ms=round(seconds * 1000, 3))
    return response


def _wants_html() -> bool:
    if request.blueprint == "web":
        return True
    if request.blueprint in ("api", "ops"):
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
                  (HTTPException, _http_error), (Exception, _unexpected))
