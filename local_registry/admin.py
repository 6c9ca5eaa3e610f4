"""The test-only admin endpoints: fault rules and request counts (same API key as the rest)."""

from __future__ import annotations

from flask import Blueprint, request

from .faults import Rule
from .shapes import DETAILS_SHAPES
from .web import ApiError, json_response, state

bp = Blueprint("admin", __name__)


def _rules() -> list[Rule]:
    """The rules of the request body: one JSON object or a list of them."""
    body = request.get_json(force=True, silent=True)
    listed = body if isinstance(body, list) else [body]
    try:
        return [Rule.from_json(item) for item in listed]
    except (TypeError, ValueError) as exc:
        raise ApiError(400, f"Bad fault rule: {exc}") from None


@bp.get("/faults")
def list_faults():
    """The live fault rules."""
    return json_response({"rules": state().faults.listing()})


@bp.post("/faults")
def add_faults():
    """Append fault rules after the live ones."""
    state().faults.add(_rules())
    return list_faults()


@bp.put("/faults")
def replace_faults():
    """Replace every fault rule."""
    state().faults.replace(_rules())
    return list_faults()


@bp.delete("/faults")
def clear_faults():
    """Remove every fault rule."""
    state().faults.replace([])
    return list_faults()


@bp.get("/requests")
def request_counts():
    """Requests received per path and per method + path since start or reset."""
    return json_response(state().counts.summary())


@bp.delete("/requests")
def reset_request_counts():
    """Start counting requests from zero."""
    state().counts.reset()
    return json_response(state().counts.summary())


@bp.put("/presigned")
def set_presigned():
    """Turn presigned download links on or off: {"enabled": true|false}."""
    body = request.get_json(force=True, silent=True)
    if not isinstance(body, dict) or not isinstance(body.get("enabled"), bool):
        raise ApiError(400, 'expected {"enabled": true|false}')
    state().presigned = body["enabled"]
    return json_response({"enabled": state().presigned})


@bp.put("/details-shape")
def set_details_shape():
    """Answer registry-model/details with status and tags ("full") or without ("sdk")."""
    body = request.get_json(force=True, silent=True)
    if not isinstance(body, dict) or body.get("shape") not in DETAILS_SHAPES:
        raise ApiError(400, f'expected {{"shape": one of {", ".join(DETAILS_SHAPES)}}}')
    state().details_shape = body["shape"]
    return json_response({"shape": state().details_shape})
