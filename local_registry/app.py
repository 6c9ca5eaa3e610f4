"""The Flask app of the local registry: blueprints, auth, counting, faults and error bodies."""

from __future__ import annotations

import hmac
import re
import time
from collections.abc import Iterable
from pathlib import Path

from flask import Flask, Response, g, request
from werkzeug.exceptions import HTTPException

from model_contract import logs

from . import (
    admin,
    assets,
    experiments,
    faults,
    model_api,
    mpm,
    read_api,
    ui,
    webhooks,
    write_api,
)
from .reviews import Role
from .store import Conflict, Invalid, NotFound, Store, StoreError
from .web import JSON, ApiError, Registry, error_response, json_response, state

API_PREFIX = "/api/rest/v2"
ADMIN_PREFIX = "/-"
BACKEND_VERSION = "4.20.500"
SERVER_NAME = "comet-registry-sync-local"
_STORE_ERRORS = {NotFound: 404, Conflict: 409, Invalid: 400}
_ITEM_IN_PATH = re.compile(r"/item/([A-Za-z0-9]+)/(?:metadata|status-configuration)$")

log = logs.get(__name__)


def create_app(data: Path, api_key: str, workspaces: Iterable[str] = (), *,
               member_key: str | None = None, presigned: bool = False,
               details_shape: str = "full", login_token: str | None = None) -> Flask:
    """A local registry storing under data, answering only requests carrying api_key.

    member_key, if given, is a second key whose status changes go through review
    (reviews.py); presigned makes downloads go through presigned links (assets.py);
    details_shape "sdk" answers registry-model/details without status and tags (shapes.py).
    login_token, if given, logs the first browser opening /ui/login/<token> in (ui.py).
    """
    app = Flask(__name__)
    store = Store(data)
    store.on_event = _webhook_sender()
    app.extensions["local_registry"] = Registry(store, api_key, frozenset(workspaces),
                                                member_key=member_key, presigned=presigned,
                                                details_shape=details_shape)
    for blueprint in (read_api.bp, write_api.bp, model_api.bp, assets.bp, experiments.bp):
        app.register_blueprint(blueprint, url_prefix=API_PREFIX)
    app.register_blueprint(assets.presigned_bp, url_prefix=assets.PRESIGNED_PREFIX)
    app.register_blueprint(admin.bp, url_prefix=ADMIN_PREFIX)
    app.register_blueprint(mpm.bp)
    app.register_blueprint(ui.bp, url_prefix=ui.PREFIX)
    app.extensions["local_registry_ui"] = ui.Sessions(login_token=login_token)
    app.add_url_rule("/clientlib/isAlive/ver", "is_alive", is_alive)
    app.before_request(_count)
    app.before_request(_inject_fault)
    app.before_request(_authenticate)
    app.after_request(_alter_response)
    app.register_error_handler(ApiError, lambda e: error_response(e.code, e.msg, e.headers))
    app.register_error_handler(StoreError, _store_error)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _unexpected_error)
    return app


def _webhook_sender():
    """The store's listener: each event becomes the deliveries its model's hooks ask for."""
    sender = webhooks.Sender()

    def on_event(trigger: str, workspace: str, model: dict, version: dict) -> None:
        body = webhooks.payload(trigger, workspace, model, version, int(time.time() * 1000))
        sender.send(webhooks.deliveries(trigger, body, model.get("webhooks") or []))

    return on_event


def is_alive() -> Response:
    """The backend version the SDK checks; `server` tells our tools this is the local registry."""
    return json_response({"version": BACKEND_VERSION, "server": SERVER_NAME})


def _count() -> None:
    if not request.path.startswith((ADMIN_PREFIX + "/", ui.PREFIX + "/")):
        state().counts.count(request.method, request.path)


def _inject_fault() -> Response | None:
    if request.path.startswith((ADMIN_PREFIX + "/", ui.PREFIX + "/")):
        return None
    rule = state().faults.take(request.method, request.path, _model_of_request,
                               request.headers.get("User-Agent", ""))
    if rule is None:
        return None
    g.fault = rule
    log.info("fault_injected", method=request.method, path=request.path, status=rule.status,
             stall=rule.stall)
    if rule.stall:
        time.sleep(rule.stall)
    if rule.status is not None:
        return error_response(rule.status, f"Injected fault: HTTP {rule.status}",
                              rule.error_headers())
    return None


def _authenticate() -> Response | None:
    if not request.path.startswith((API_PREFIX + "/", ADMIN_PREFIX + "/")):
        return None
    # The Python SDK sends the raw key as Authorization; the Java SDK as Comet-Sdk-Api.
    given = (request.headers.get("Authorization") or request.headers.get("Comet-Sdk-Api")
             or "").encode()
    if hmac.compare_digest(given, state().api_key.encode()):
        g.role = Role.OWNER
        return None
    member = state().member_key
    if member and hmac.compare_digest(given, member.encode()) and not request.path.startswith(
            ADMIN_PREFIX + "/"):
        g.role = Role.MEMBER
        return None
    return error_response(401, "Unauthorized: missing or invalid API key")


def _model_of_request() -> str | None:
    """The registry model a request is about, for fault rules that name one."""
    args = request.args
    name = args.get("modelName") or args.get("registryModelName")
    if name is None and request.mimetype == JSON:
        body = request.get_json(silent=True, cache=True)
        if isinstance(body, dict):
            name = body.get("registryModelName")
            args = {**args, **{k: body[k] for k in ("modelItemId", "registryModelItemId")
                               if k in body}}
    item_id = args.get("modelItemId") or args.get("registryModelItemId")
    in_path = _ITEM_IN_PATH.search(request.path)
    if item_id is None and in_path:
        item_id = in_path.group(1)
    if name is None and request.path.startswith(assets.PRESIGNED_PREFIX + "/"):
        args = {**args, "assetId": request.path.rsplit("/", 1)[-1]}
    try:
        if name is None and item_id:
            return state().store.item(str(item_id))[0]["modelName"]
        if name is None and args.get("assetId"):
            version, _ = state().store.asset(args["assetId"])
            return state().store.item(version["registryModelItemId"])[0]["modelName"]
    except NotFound:
        return None
    return name


def _alter_response(response: Response) -> Response:
    rule = g.get("fault")
    if rule is None:
        return response
    if rule.rewrites_json and response.mimetype == JSON:
        response.set_data(faults.rewrite_json(response.get_data(), rule))
    if rule.alters_body:
        length = response.content_length
        chunks = response.response if response.direct_passthrough else [response.get_data()]
        response.response = faults.alter_body(chunks, rule, length)
        response.direct_passthrough = True
        if rule.chunked:
            response.headers.pop("Content-Length", None)
        elif length is not None:
            response.headers["Content-Length"] = str(length)
    return response


def _store_error(exc: StoreError) -> Response:
    return error_response(_STORE_ERRORS.get(type(exc), 400), str(exc))


def _http_error(exc: HTTPException) -> Response:
    if exc.code == 404:
        log.info("unknown_endpoint", method=request.method, path=request.path)
    return error_response(exc.code or 500, exc.description or exc.name)


def _unexpected_error(exc: Exception) -> Response:
    log.error("request_failed", method=request.method, path=request.path,
              error=str(exc), error_type=type(exc).__name__)
    return error_response(500, "Internal Server Error")
