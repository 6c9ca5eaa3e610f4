"""The rest of what the SDK's model API reaches: history, metadata, status configuration,
model update and webhooks (docs/comet-api.md §2a, §8), under /api/rest/v2/.

INFERRED shapes, where Comet documents none: history groups events by UTC day ("November 16,
2023"), newest first, each with `createdAt` (epoch ms) besides the SDK's fields; a status
configuration answers {} when none is set; metadata POST merges by key; webhooks/config GET
answers {"webhookConfigs": [...]} in the shape POST takes (secrets left out); webhooks are sent
by webhooks.py.
"""

from __future__ import annotations

import time
from itertools import groupby

from flask import Blueprint, g

from . import reviews
from . import webhooks as hooks_config
from .store import check_status
from .web import ApiError, arg, check_workspace, json_body, json_response, state, workspace_arg

bp = Blueprint("model_api", __name__)


@bp.post("/registry-model/history/item")
def history():
    """A version's events grouped by day, newest first."""
    body = json_body()
    item_id = body.get("registryModelItemId")
    if not item_id:
        raise ApiError(400, "registryModelItemId is required")
    model, version = state().store.item(str(item_id))
    stored = list(enumerate(version.get("history") or []))
    events = [e for _, e in sorted(stored, key=lambda p: (p[1]["at"], p[0]), reverse=True)]
    return json_response({day: [_event(model, version, e) for e in group]
                          for day, group in groupby(events, key=lambda e: _day(e["at"]))})


def _day(stamp: int) -> str:
    moment = time.gmtime(stamp / 1000)
    return f"{time.strftime('%B', moment)} {moment.tm_mday}, {moment.tm_year}"


def _event(model: dict, version: dict, stored: dict) -> dict:
    return {"actionType": stored["actionType"], "comment": stored.get("comment"),
            "newValue": stored.get("newValue") or {},
            "previousValue": stored.get("previousValue") or {},
            "registryModelId": model["registryModelId"],
            "registryModelItemActualPathParams": None,
            "registryModelItemId": version["registryModelItemId"],
            "registryModelItemVersion": version["version"],
            "registryModelName": model["modelName"], "userAvatarLink": None,
            "userName": stored.get("userName"), "createdAt": stored["at"]}


@bp.get("/registry-model/item/<item_id>/metadata")
def metadata(item_id: str):
    """A version's metadata as [{key, value}]."""
    return json_response({"metadata": state().store.item(item_id)[1].get("metadata") or []})


@bp.post("/write/registry-model/item/<item_id>/metadata")
def set_metadata(item_id: str):
    """Merge {metadata: [{key, value}]} into a version's metadata, by key."""
    listed = json_body().get("metadata")
    if not isinstance(listed, list) or not all(
            isinstance(m, dict) and isinstance(m.get("key"), str) for m in listed):
        raise ApiError(400, "metadata must be a list of {key, value}")

    def merge(_model: dict, version: dict) -> None:
        merged = {m["key"]: m for m in version.get("metadata") or []}
        merged.update({m["key"]: {"key": m["key"], "value": m.get("value")} for m in listed})
        version["metadata"] = list(merged.values())

    state().store.apply(item_id, merge)
    return json_response({})


@bp.get("/registry-model/item/<item_id>/status-configuration")
def status_configuration(item_id: str):
    """A version's status configuration, or {} when none is set."""
    config = state().store.item(item_id)[1].get("statusConfiguration")
    return json_response({**config, "modelItemId": item_id} if config else {})


@bp.post("/write/registry-model/item/<item_id>/status-configuration")
def set_status_configuration(item_id: str):
    """Set {status, isReviewRequired, statusConfiguration: [{key, value}], comment?}."""
    body = json_body()
    status = body.get("status")
    if not isinstance(status, str) or not isinstance(body.get("statusConfiguration", []), list):
        raise ApiError(400, "status (a string) and statusConfiguration (a list) are required")
    check_status(status)
    config = {"status": status, "isReviewRequired": bool(body.get("isReviewRequired")),
              "statusConfiguration": body.get("statusConfiguration") or [],
              "comment": body.get("comment")}
    state().store.apply(item_id, lambda _m, v: v.update(statusConfiguration=config))
    return json_response({})


@bp.post("/write/registry-model/update")
def update_model():
    """Rename a model, or change its description or visibility."""
    body = json_body()
    if not body.get("registryModelId"):
        raise ApiError(400, "registryModelId is required")
    changes = {k: body[k] for k in ("description", "isPublic") if body.get(k) is not None}
    name = body.get("registryModelName")
    if name is not None and not isinstance(name, str):
        raise ApiError(400, "registryModelName must be a string")
    state().store.update_model(str(body["registryModelId"]), name, changes)
    return json_response({})


@bp.get("/webhooks/config")
def webhooks():
    """The webhooks of a model, in the shape POST takes."""
    workspace, name = workspace_arg(), arg("modelName")
    hooks = [{k: v for k, v in hook.items() if k != "secret"}
             for hook in state().store.model(workspace, name).get("webhooks") or []]
    return json_response({"webhookConfigs": [{"workspaceName": workspace, "modelName": name,
                                              "webhookUrls": hooks}]})


@bp.post("/webhooks/config")
def set_webhooks():
    """Replace the webhooks of each model named in {webhookConfigs: [...]}."""
    configs = json_body().get("webhookConfigs")
    if not isinstance(configs, list) or not all(isinstance(c, dict) for c in configs):
        raise ApiError(400, "webhookConfigs must be a list of objects")
    for config in configs:
        try:
            hooks = hooks_config.check_hooks(config.get("webhookUrls") or [])
        except hooks_config.InvalidHook as exc:
            raise ApiError(400, str(exc)) from None
        state().store.set_webhooks(check_workspace(config.get("workspaceName")),
                                   str(config.get("modelName")), hooks)
    return json_response({})


def role() -> reviews.Role:
    """The role of the key the request carries (set when it was authenticated)."""
    return g.get("role", reviews.Role.OWNER)
