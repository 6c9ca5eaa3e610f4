"""Where views find the running app's model holder and settings, and how they answer JSON."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from flask import Flask, Response, current_app, request

from serving.challenger.roles import Roles
from serving.config import ServingConfig
from serving.errors import FieldError
from serving.model.loader import ServedModel
from serving.swap.holder import ModelHolder
from serving.telemetry.mpm_events import MONITOR, Monitor

HOLDER = "serving.swap.holder"
SETTINGS = "serving.settings"
ROLES = "serving.challenger.roles"
RELOAD_TOKEN_SOURCE = "serving.reload-token"  # noqa: S105 (an extension key)
HEADER_MAX = 128  # characters of a header value taken from a snapshot
PLACEHOLDER = "invalid"


def holder() -> ModelHolder:
    """The model holder of the current app."""
    return current_app.extensions[HOLDER]


def roles() -> Roles:
    """Champion and challenger of the current app."""
    return current_app.extensions[ROLES]


def client_key() -> str:
    """What keeps a client on one role: the CANARY_KEY_HEADER value, else its address."""
    return client_key_of(request.environ, settings().challenger.key_header)


def client_key_of(environ: dict[str, Any], header: str | None) -> str:
    """client_key read from a WSGI environ (headers found as werkzeug finds them)."""
    value = environ.get(_environ_key(header)) if header else None
    # Behind a proxy (an ingress) the client is the last X-Forwarded-For entry, the one the
    # nearest proxy added; without one it is the peer. A client sending the header itself
    # only chooses its own bucket, which it could do anyway with CANARY_KEY_HEADER.
    forwarded = environ.get("HTTP_X_FORWARDED_FOR", "").rpartition(",")[2].strip()
    return value or forwarded or environ.get("REMOTE_ADDR") or ""


def _environ_key(header: str) -> str:
    key = header.upper().replace("-", "_")
    return key if key in ("CONTENT_TYPE", "CONTENT_LENGTH") else "HTTP_" + key


@dataclass(frozen=True)
class Services:
    """What a prediction needs of an app: settings, models, roles and the MPM sender."""

    settings: ServingConfig
    holder: ModelHolder
    roles: Roles
    monitor: Monitor


def services_of(app: Flask) -> Services:
    """The services of an app (for code that runs outside its request context)."""
    found = app.extensions
    return Services(found[SETTINGS], found[HOLDER], found[ROLES], found[MONITOR])


def services() -> Services:
    """The services of the current app."""
    return services_of(current_app)


def settings() -> ServingConfig:
    """The settings of the current app."""
    return current_app.extensions[SETTINGS]


def reload_token() -> str | None:
    """The admin token now (re-read from its file when that changed)."""
    return current_app.extensions[RELOAD_TOKEN_SOURCE].current()


def json_response(payload: Any, status: int = 200, headers: dict[str, str] | None = None,
                  ) -> Response:
    """A compact JSON response (keys in the order given)."""
    return Response(json.dumps(payload, separators=(",", ":"), allow_nan=False), status=status,
                    headers=headers, mimetype="application/json")


def error_response(status: int, error: str, message: str,
                   errors: list[FieldError] | None = None, **extra: Any) -> Response:
    """The JSON body of every error: a code, a sentence, and the offending fields if any."""
    payload: dict[str, Any] = {"error": error, "message": message}
    if errors is not None:
        payload["errors"] = [e.to_json() for e in errors]
    payload.update(extra)
    return json_response(payload, status)


def model_headers(model: ServedModel, role: str = "champion") -> dict[str, str]:
    """The headers naming the model that answered, and its role (champion or challenger)."""
    return {"X-Model-Version": header_safe(model.version),
            "X-Model-Snapshot": header_safe(model.snapshot), "X-Model-Role": role}


def header_safe(value: object) -> str:
    """The value if it is printable ASCII of bounded length, else a placeholder.

    The loader already refuses unsafe versions; this keeps any slip from turning every
    prediction into a 500 (a header cannot hold CR, LF, NUL or non-Latin-1 characters).
    """
    text = value if isinstance(value, str) else str(value)
    if 0 < len(text) <= HEADER_MAX and text.isascii() and text.isprintable():
        return text
    return PLACEHOLDER
