"""Operations endpoints, for probes and the sidecar: health, readiness, metrics, validate, reload.

/-/validate and /-/reload need `Authorization: Bearer <RELOAD_TOKEN>`; with ADMIN_PORT set they
exist only on requests that arrived on that port (404 elsewhere), and so does /metrics (the admin
listener, or its METRICS_PORT twin for Prometheus), never on the public port.
"""

from __future__ import annotations

import functools

from flask import Blueprint, Response, request
from werkzeug.exceptions import NotFound

from common import bearer

from . import metrics
from .api import read_json
from .context import error_response, holder, json_response, reload_token, settings
from .errors import FieldError, InvalidInput, ModelRejected, SnapshotNotFound
from .validations import State

# /-/validate: the protocol's state, and the older `outcome` field beside it for older sidecars.
VALIDATE_ANSWERS = {State.ACCEPTED: (200, "ok"), State.REJECTED: (422, "rejected"),
                    State.RUNNING: (202, "running")}

bp = Blueprint("ops", __name__)
ADMIN_PREFIX = "/-/"


@bp.get("/healthz")
def healthz():
    """Alive: the process answers."""
    return json_response({"status": "ok"})


@bp.get("/readyz")
def readyz():
    """Ready once a model is loaded; 503 until then."""
    model = holder().live
    if model is None:
        return json_response({"status": "no_model", "reason": _no_model_reason()}, 503,
                             headers={"Retry-After": "1"})
    return json_response({"status": "ready", "snapshot": model.snapshot,
                          "version": model.version})


def _no_model_reason() -> str:
    return holder().why_no_model()


@bp.get("/metrics")
def prometheus():
    """Prometheus metrics of all workers; off the public port when an admin port is set."""
    if _off_the_admin_port():
        raise NotFound()
    body, content_type = metrics.render(settings().metrics_dir)
    return Response(body, content_type=content_type)


def _off_the_admin_port() -> bool:
    """True when an admin port is set and this request did not arrive on it."""
    port = settings().admin_port
    return port is not None and request.environ.get("SERVER_PORT") != str(port)


@bp.before_app_request
def hide_admin_paths() -> None:
    """Off the admin port, /-/ paths do not exist for any method (not 405, which reveals them)."""
    if request.path.startswith(ADMIN_PREFIX) and _off_the_admin_port():
        raise NotFound()


def admin_only(view):
    """Only on the admin port (when one is set), and only with the shared token."""

    @functools.wraps(view)
    def guarded(*args, **kwargs):
        if _off_the_admin_port():
            raise NotFound()
        token = reload_token()
        if not token:
            return error_response(403, "forbidden", "admin endpoints are disabled: set "
                                  "RELOAD_TOKEN or RELOAD_TOKEN_FILE")
        if not bearer.holds(request.headers.get("Authorization"), [token]):
            response = error_response(401, "unauthorized", "a valid bearer token is required")
            response.headers["WWW-Authenticate"] = "Bearer"
            return response
        return view(*args, **kwargs)

    return guarded


def _snapshot_field(required: bool) -> str | None:
    body = read_json()
    snapshot = body.get("snapshot") if isinstance(body, dict) else None
    if snapshot is None and not required and isinstance(body, dict):
        return None
    if not isinstance(snapshot, str) or not snapshot:
        raise InvalidInput([FieldError("snapshot", "must be a snapshot id (a string)")])
    return snapshot


@bp.post("/-/validate")
@admin_only
def validate():
    """Prepare: the validator process loads and checks a snapshot; 202 while it runs."""
    snapshot = _snapshot_field(required=True)
    try:
        verdict = holder().validate(snapshot, settings().validation_wait)
    except SnapshotNotFound as exc:
        return json_response({"state": "not_found", "outcome": "not_found",
                              "snapshot": snapshot[:200], "reason": str(exc)}, 404)
    status, outcome = VALIDATE_ANSWERS[verdict.state]
    headers = {"Retry-After": "1"} if status == 202 else None
    return json_response({**verdict.to_json(), "outcome": outcome}, status, headers)


@bp.post("/-/reload")
@admin_only
def reload():
    """Commit: converge on `current` now (the named snapshot is a hint; the symlink is truth)."""
    requested = _snapshot_field(required=False)
    models = holder()
    try:
        outcome = models.converge(force=True, wait=settings().validation_wait)
    except ModelRejected as exc:
        return json_response({"outcome": "rejected", "snapshot": exc.snapshot,
                              "reason": exc.reason}, 422)
    served = models.live
    return json_response({"outcome": outcome, "snapshot": served.snapshot if served else None,
                          "requested": requested, "current": models.current()})
