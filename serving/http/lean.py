"""Predictions answered without Flask's request cycle, when the request is a plain one.

POST /api/v1/predict (declared JSON) and POST /v2/models/{name}[/versions/{v}]/infer with a
declared Content-Length within MAX_BODY_BYTES are answered here: the same code as the views
(serving.http.api.predict_reply, serving.oip.endpoints.infer_reply: validation, roles, hot swap,
metrics, MPM), written with the same status, headers and bytes, with no werkzeug Request, no
routing and no context push (about half of a single prediction's time). Anything else (another
path or method, another Content-Type, a chunked or oversized body, a call on the admin port)
goes to the Flask app untouched; an error raised here is answered by the app's own error
handlers, in a request context made for it, so error bodies stay Flask's.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

from flask import Flask

from model_contract import logs
from serving.http.api import declared_length, predict_reply, read_declared
from serving.http.context import client_key_of, services_of
from serving.oip.endpoints import infer_reply
from serving.telemetry import metrics

from .replies import JSON, Reply

log = logs.get("serving.http.app")  # the request log event is the app's, whichever path answered
STARTED = "serving.started"  # serving.http.app's key of the request's perf_counter start
PREDICT = "/api/v1/predict"
V2_MODELS = "/v2/models/"

WsgiApp = Callable[[dict[str, Any], Callable], Iterable[bytes]]


class _Sent(list):
    """The answer's body as a WSGI result whose close runs what comes after sending."""

    __slots__ = ("close",)

    def __init__(self, body: bytes, after: Callable[[], None]):
        super().__init__((body,))
        self.close = after


class LeanPredictions:
    """A WSGI app: plain prediction requests answered here, everything else by Flask's."""

    def __init__(self, app: Flask):
        self.app, self.flask = app, app.wsgi_app
        self.parts = services_of(app)
        admin = self.parts.settings.admin_port
        self.admin_port = None if admin is None else str(admin)

    def __call__(self, environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        """Answer a plain prediction request here; give anything else to Flask."""
        route = _route(environ) if environ["REQUEST_METHOD"] == "POST" else None
        length = None if route is None else \
            declared_length(environ, self.parts.settings.max_body_bytes)
        if length is None or environ.get("SERVER_PORT") == self.admin_port:
            return self.flask(environ, start_response)
        environ[STARTED] = started = time.perf_counter()
        endpoint, name, version = route
        try:
            raw = read_declared(environ["wsgi.input"], length)
            reply = self._reply(environ, raw, name, version)
        except Exception as exc:  # the app's handlers decide, as for its views
            return self._flask_error(environ, exc, start_response)
        start_response("200 OK", reply.wsgi_headers())
        seconds = time.perf_counter() - started
        metrics.observe_request(endpoint, 200, seconds)
        if log.enabled(logging.DEBUG):
            log.debug("request", method="POST", path=environ["PATH_INFO"], endpoint=endpoint,
                      status=200, ms=round(seconds * 1000, 3))
        return _Sent(reply.body, reply.after)

    def _reply(self, environ: dict[str, Any], raw: bytes, name: str | None,
               version: str | None) -> Reply:
        key = self._client_key(environ)
        if name is None:
            return predict_reply(self.parts, raw, key)
        return infer_reply(self.parts, name, version, raw, environ, key)

    def _client_key(self, environ: dict[str, Any]) -> Callable[[], str]:
        header = self.parts.settings.challenger.key_header
        return lambda: client_key_of(environ, header)

    def _flask_error(self, environ: dict[str, Any], exc: Exception,
                     start_response: Callable) -> Iterable[bytes]:
        """The app's answer to an error of a request it did not dispatch (its own handlers)."""
        with self.app.request_context(environ):
            try:
                returned = self.app.handle_user_exception(exc)
            except Exception as unhandled:  # Flask's last resort: its 500
                returned = self.app.handle_exception(unhandled)
            response = self.app.finalize_request(returned)
            return response(environ, start_response)


def _route(environ: dict[str, Any]) -> tuple[str, str | None, str | None] | None:
    """(endpoint, model name, version) of a plain prediction request; None for the rest."""
    path = environ["PATH_INFO"]
    if path == PREDICT:
        content_type = environ.get("CONTENT_TYPE", "")
        if content_type == JSON or content_type.startswith(JSON + ";"):
            return "api.predict", None, None
        return None  # Flask says 415 (or parses a type written otherwise)
    if not path.startswith(V2_MODELS) or not path.isascii():
        return None
    parts = path[len(V2_MODELS):].split("/")
    if len(parts) == 2 and parts[1] == "infer" and parts[0]:
        return "v2.infer", parts[0], None
    if len(parts) == 4 and parts[1] == "versions" and parts[3] == "infer" \
            and parts[0] and parts[2]:
        return "v2.infer", parts[0], parts[2]
    return None
