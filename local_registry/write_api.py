"""The write endpoints of docs/comet-api.md §2, plus our own upload, under /api/rest/v2/."""

from __future__ import annotations

import json
import re
import uuid

from flask import Blueprint, Response, request

from . import model_api, reviews, shapes
from .store import SEMVER, Conflict, NotFound, check_status
from .web import ApiError, arg, check_workspace, json_body, json_response, state, workspace_arg

bp = Blueprint("write_api", __name__)
EXPERIMENT_KEY = re.compile(r"^[0-9a-zA-Z]{1,64}$")


def _version_answer(record: dict) -> Response:
    return json_response(shapes.version(record, request.host_url.rstrip("/"), with_assets=False))


@bp.post("/write/registry-model/item/upload")
def upload():
    """Register a version from a raw zip body, streamed to disk and kept as uploaded."""
    store = state().store
    workspace, name = workspace_arg(), arg("registryModelName")
    fields = _upload_fields(name)
    assets = _explicit_assets()
    if fields["version"] in {v["version"] for v in _versions_of(workspace, name)}:
        raise Conflict(f"Version {fields['version']} of registry model {name!r} already exists")
    received = store.receive(request.stream)
    try:
        model_id, item_id = store.add_version(workspace, name, fields, received, assets)
    finally:
        received.unlink(missing_ok=True)
    return json_response({"registryModelId": model_id, "registryModelItemId": item_id})


def _upload_fields(name: str) -> dict:
    """The version's fields from the upload's query parameters, checked before any byte is read."""
    version, status = arg("version"), arg("status", False) or "None"
    if not SEMVER.match(version):
        raise ApiError(400, f"Version {version!r} is not a semantic version such as 1.0.0")
    check_status(status)
    key = arg("experimentKey", False)
    if key is not None and not EXPERIMENT_KEY.match(key):
        raise ApiError(400, "experimentKey must be 1-64 letters or digits")
    created = arg("createdAt", False)
    if created is not None and not created.isdigit():
        raise ApiError(400, "createdAt must be epoch milliseconds")
    tags = [t.strip() for v in request.args.getlist("tags") for t in v.split(",") if t.strip()]
    return {
        "modelName": name, "version": version, "status": status, "tags": tags,
        "comment": arg("comment", False), "experimentKey": key,
        "experimentModelName": arg("experimentModelName", False),
        "description": arg("description", False), "isPublic": arg("isPublic", False) == "true",
        "userName": arg("userName", False) or state().default_user,
        "createdAt": int(created) if created else None,
    }


def _explicit_assets() -> list[dict] | None:
    """An `assets` parameter, a JSON list of {"fileName", "fileSize"}, overrides the zip's.

    An asset may name a `member` (index in the zip) to serve, or a `link` (s3://, gs://...):
    then it is a remote asset, listed with that link and no bytes here. `metadata` (a JSON
    object, or the JSON string Comet lists) is listed as a JSON string, as Comet does: a remote
    asset synced from a bucket carries `synced`, `file_size`, `version_id`, `error_message`.
    """
    raw = arg("assets", False)
    if raw is None:
        return None
    try:
        listed = json.loads(raw)
        return [{"assetId": uuid.uuid4().hex, "fileName": str(a["fileName"]),
                 "fileSize": int(a["fileSize"]),
                 "member": None if a.get("member") is None else int(a["member"]),
                 "remoteLink": str(a["link"]) if a.get("link") else None,
                 "metadata": _asset_metadata(a.get("metadata"))}
                for a in listed]
    except (ValueError, TypeError, KeyError, AttributeError):
        raise ApiError(400, "assets must be a JSON list of {fileName, fileSize}, metadata a "
                            "JSON object") from None


def _asset_metadata(value: object) -> str | None:
    """An asset's metadata as the JSON string Comet lists; ValueError unless an object."""
    if value is None:
        return None
    parsed = json.loads(value) if isinstance(value, str) else value
    if not isinstance(parsed, dict):
        raise ValueError("metadata must be a JSON object")
    return json.dumps(parsed)


def _versions_of(workspace: str, name: str) -> list[dict]:
    try:
        return state().store.model(workspace, name)["versions"]
    except NotFound:
        return []


@bp.post("/write/registry-model/item/create")
def create():
    """Register a version with no files (the SDK's register call)."""
    body = json_body()
    name = body.get("registryModelName") or body.get("experimentModelName")
    if not isinstance(name, str) or not isinstance(body.get("version"), str):
        raise ApiError(400, "registryModelName and version are required strings")
    if not isinstance(body.get("tags") or [], list):
        raise ApiError(400, "tags must be a list of strings")
    fields = {
        "modelName": name, "version": body["version"], "status": body.get("status") or "None",
        "tags": [str(t) for t in body.get("tags") or []], "comment": body.get("versionComment"),
        "experimentKey": body.get("experimentKey"),
        "experimentModelName": body.get("experimentModelName"),
        "description": body.get("registryModelDescription"),
        "isPublic": bool(body.get("publicModel")), "userName": state().default_user,
    }
    workspace = check_workspace(_create_workspace(body))
    model_id, item_id = state().store.add_version(workspace, name, fields, None)
    return json_response({"registryModelId": model_id, "registryModelItemId": item_id})


def _create_workspace(body: dict) -> str | None:
    """item/create names no workspace: Comet takes the experiment's; we infer one."""
    named = body.get("workspaceName") or request.args.get("workspaceName")
    if named:
        return named
    if body.get("experimentKey"):
        known = state().store.workspace_of_experiment(body["experimentKey"])
        if known:
            return known
    allowed = state().workspaces
    return next(iter(allowed)) if len(allowed) == 1 else None


@bp.post("/write/registry-model/item/status")
def set_status():
    """Promote or demote a version: {"status", "modelItemId"}."""
    body = json_body()
    if not isinstance(body.get("status"), str) or not body.get("modelItemId"):
        raise ApiError(400, "status and modelItemId are required")
    return _version_answer(change_status(str(body["modelItemId"]), body["status"],
                                         model_api.role()))


def change_status(item_id: str, status: str, role: reviews.Role = reviews.Role.OWNER) -> dict:
    """Set a version's status (a member's, under review, becomes a request), as item/status and
    the registry's web page both do."""
    user = "member" if role is reviews.Role.MEMBER else state().default_user
    return reviews.change_status(state().store, item_id, status, role, user)


@bp.get("/write/registry-model/item/stage")
def add_stage():
    """Add a tag (the old "add stage")."""
    return _version_answer(state().store.add_tag(arg("modelItemId"), arg("stage")))


@bp.get("/write/registry-model/item/stage/delete")
def delete_stage():
    """Remove a tag."""
    return _version_answer(state().store.remove_tag(arg("modelItemId"), arg("stage")))


@bp.post("/write/registry-model/item/update")
def update_item():
    """Replace a version's comment and/or its stages (as tags)."""
    body = json_body()
    item_id = body.get("registryModelItemId")
    if not item_id:
        raise ApiError(400, "registryModelItemId is required")
    changes = {}
    if body.get("comment") is not None:
        changes["comment"] = str(body["comment"])
    if body.get("stages") is not None:
        changes["tags"] = list(dict.fromkeys(str(s) for s in body["stages"]))
    return _version_answer(state().store.update_item(str(item_id), **changes))


@bp.get("/write/registry-model/item/delete")
def delete_item():
    """Delete a version."""
    state().store.delete_item(arg("modelItemId"))
    return json_response({})


@bp.get("/write/registry-model/delete")
def delete_model():
    """Delete a model and all its versions."""
    state().store.delete_model(workspace_arg(), arg("modelName"))
    return json_response({})


@bp.post("/write/registry-model/notes")
def set_notes():
    """Replace a model's notes."""
    body = json_body()
    workspace = check_workspace(body.get("workspaceName"))
    if not body.get("registryModelName"):
        raise ApiError(400, "registryModelName is required")
    state().store.set_notes(workspace, body["registryModelName"], str(body.get("notes") or ""))
    return json_response({})
