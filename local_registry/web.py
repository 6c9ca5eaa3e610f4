"""What every view of the local registry shares: its state, JSON answers, errors, parameters."""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass, field
from typing import Any

from flask import Response, current_app, request

from .faults import Faults, RequestCounts
from .store import Store

JSON = "application/json"
BINARY = "application/octet-stream"
CONSTRAINT_VIOLATION = "Bad Request (Constraint-Violation)"


@dataclass
class Registry:
    """The state of one local registry app."""

    store: Store
    api_key: str
    workspaces: frozenset[str] = frozenset()
    default_user: str = "local"
    member_key: str | None = None  # a key whose status changes may need an owner's review
    presigned: bool = False  # download-instructions give presigned links (s3DownloadEnabled)
    details_shape: str = "full"  # "sdk": registry-model/details as the SDK's docstring shows it
    faults: Faults = field(default_factory=Faults)
    counts: RequestCounts = field(default_factory=RequestCounts)


class ApiError(Exception):
    """An error answered in Comet's error body."""

    def __init__(self, code: int, msg: str, headers: dict[str, str] | None = None):
        super().__init__(msg)
        self.code, self.msg, self.headers = code, msg, headers or {}


def state() -> Registry:
    """The registry serving the current request."""
    return current_app.extensions["local_registry"]


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """A JSON answer whose Content-Type is exactly application/json: the SDK refuses a charset."""
    response = Response(json.dumps(data), status=status, headers=headers)
    response.headers["Content-Type"] = JSON
    return response


def error_response(code: int, msg: str, headers: dict[str, str] | None = None) -> Response:
    """Comet's error body: {"msg", "code", "sdk_error_code", "data"}."""
    return json_response({"msg": msg, "code": code, "sdk_error_code": 0, "data": None},
                         code, headers)


def arg(name: str, required: bool = True) -> str | None:
    """A query parameter; a missing required one is a 400."""
    value = request.args.get(name)
    if required and not value:
        raise ApiError(400, f"Missing required parameter {name!r}")
    return value or None


def check_workspace(workspace: str | None) -> str:
    """The workspace, refused the way Comet refuses one that does not exist."""
    if not workspace:
        raise ApiError(400, "Missing required parameter 'workspaceName'")
    allowed = state().workspaces
    if allowed and workspace not in allowed:
        raise ApiError(400, CONSTRAINT_VIOLATION)
    return workspace


def workspace_arg() -> str:
    """The checked workspaceName query parameter."""
    return check_workspace(request.args.get("workspaceName"))


def json_body() -> dict[str, Any]:
    """The request's JSON object, gunzipped if the SDK compressed it."""
    raw = request.get_data(cache=True)
    if request.headers.get("Content-Encoding", "").lower() == "gzip":
        raw = gzip.decompress(raw)
    try:
        body = json.loads(raw or b"{}")
    except ValueError:
        raise ApiError(400, "The request body is not JSON") from None
    if not isinstance(body, dict):
        raise ApiError(400, "The request body must be a JSON object")
    return body
