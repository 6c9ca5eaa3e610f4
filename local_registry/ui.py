"""The registry's web page: models, their versions, and a status control, as in the Comet UI.

Plain HTML forms, no JavaScript. A person logs in with the registry's API key (the same key the
REST API wants); the key is checked and forgotten, and the browser keeps only a random session id
in an HttpOnly, SameSite=Strict cookie, so the key is never in a URL, a page or a log. A registry
started with a one-time login token (the demo's) also logs in, as owner, the first browser that
opens /ui/login/<token>; the token is then spent. The key
decides the role, as for the REST API: the owner key changes statuses, the member key (when the
registry has one) asks for a reviewed status and an owner approves. A change goes through
`write_api.change_status`, the code behind `POST write/registry-model/item/status` (the request
the Comet UI makes), with the same checks.
"""

from __future__ import annotations

import hmac
import secrets
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import quote

from flask import Blueprint, Response, current_app, redirect, render_template, request, url_for

from model_contract import logs

from .reviews import Role
from .store import ALLOWED_STATUSES, Invalid, NotFound
from .web import state
from .write_api import change_status

bp = Blueprint("ui", __name__, template_folder="templates")
COOKIE = "registry_ui_session"
PREFIX = "/ui"

log = logs.get(__name__)


@dataclass
class Sessions:
    """The role of each logged-in browser by session id; in memory, gone when the registry stops."""

    roles: dict[str, Role] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    login_token: str | None = None  # one-time: spent by the first browser that opens its link

    def redeem(self, token: str) -> str | None:
        """An owner's new session id for the one-time token, which is then spent; else None."""
        with self.lock:
            if not self.login_token or not hmac.compare_digest(token.encode(),
                                                               self.login_token.encode()):
                return None
            self.login_token = None
        return self.open(Role.OWNER)

    def open(self, role: Role) -> str:
        """A new session id for a role."""
        with self.lock:
            new = secrets.token_urlsafe(32)
            self.roles[new] = role
            return new

    def close(self, session_id: str) -> None:
        """Forget a session id."""
        with self.lock:
            self.roles.pop(session_id, None)

    def role(self, session_id: str | None) -> Role | None:
        """The role of a cookie's session; None when it is not logged in."""
        with self.lock:
            return self.roles.get(session_id or "")


def sessions() -> Sessions:
    """The sessions of the current app."""
    return current_app.extensions.setdefault("local_registry_ui", Sessions())


@bp.before_request
def _require_login() -> Response | None:
    if request.endpoint in ("ui.login", "ui.log_in", "ui.one_time_login") or _role() is not None:
        return None
    return redirect(url_for("ui.login"))


@bp.get("/login")
def login() -> str:
    """The login form."""
    return render_template("ui/login.html")


@bp.post("/login")
def log_in() -> Response | tuple[str, int]:
    """Check the key; on success a session cookie, never the key itself."""
    role = _role_of_key(request.form.get("api_key", "").encode())
    if role is None:
        log.info("ui_login_refused")
        return render_template("ui/login.html", error="That is not this registry's API key."), 401
    return _logged_in(sessions().open(role))


@bp.get("/login/<token>")
def one_time_login(token: str) -> Response | tuple[str, int]:
    """The one-time link: logs this browser in as owner, once; after that, the login form."""
    session_id = sessions().redeem(token)
    if session_id is None:
        log.info("ui_one_time_login_refused")
        return render_template("ui/login.html", error="That login link has been used or is "
                               "not this registry's: log in with the API key."), 401
    log.info("ui_one_time_login")
    return _logged_in(session_id)


def _logged_in(session_id: str) -> Response:
    response = redirect(url_for("ui.models"))
    response.set_cookie(COOKIE, session_id, httponly=True, samesite="Strict", path=PREFIX)
    return response


def _role_of_key(given: bytes) -> Role | None:
    """The role a key logs in as, by the REST API's rules; None for a wrong key."""
    if hmac.compare_digest(given, state().api_key.encode()):
        return Role.OWNER
    member = state().member_key
    if member and hmac.compare_digest(given, member.encode()):
        return Role.MEMBER
    return None


def _role() -> Role | None:
    return sessions().role(request.cookies.get(COOKIE))


@bp.post("/logout")
def log_out() -> Response:
    """End the session."""
    sessions().close(request.cookies.get(COOKIE, ""))
    response = redirect(url_for("ui.login"))
    response.delete_cookie(COOKIE, path=PREFIX)
    return response


@bp.get("/")
def models() -> str:
    """Every registry model of every workspace."""
    store = state().store
    listing = [(workspace, store.workspace_models(workspace)) for workspace in store.workspaces()]
    return render_template("ui/models.html", listing=listing)


@bp.get("/models/<workspace>/<name>")
def versions(workspace: str, name: str) -> str | tuple[str, int]:
    """A model's versions with status, tags, experiment, creation time and size."""
    return _versions_page(workspace, name)


@bp.post("/models/<workspace>/<name>/status")
def set_status(workspace: str, name: str) -> Response | tuple[str, int]:
    """Change one version's status, then show the model again."""
    version, status = request.form.get("version", ""), request.form.get("status", "")
    role = _role() or Role.MEMBER
    try:
        record = _version_record(workspace, name, version)
        after = change_status(record["registryModelItemId"], status, role)
    except (NotFound, Invalid) as exc:
        return _versions_page(workspace, name, error=str(exc), code=400)
    log.info("ui_status_changed", workspace=workspace, model=name, version=version,
             status=after["status"], requested=status, role=role.value)
    said = (f"{version} is now {status}" if after["status"] == status else
            f"{version}: {status} requested; an owner must approve it")
    return redirect(url_for("ui.versions", workspace=workspace, name=name, changed=said))


def _version_record(workspace: str, name: str, version: str) -> dict:
    model = state().store.model(workspace, name)
    for record in model["versions"]:
        if record["version"] == version:
            return record
    raise NotFound(f"Version {version!r} of registry model {name!r} not found")


def _versions_page(workspace: str, name: str, error: str | None = None,
                   code: int = 200) -> tuple[str, int]:
    try:
        model = state().store.model(workspace, name)
    except NotFound as exc:
        return render_template("ui/error.html", error=str(exc)), 404
    rows = [VersionRow.of(record) for record in model["versions"]]
    return render_template("ui/versions.html", workspace=workspace, name=name, rows=rows,
                           statuses=ALLOWED_STATUSES, error=error, owner=_role() is Role.OWNER,
                           changed=request.args.get("changed")), code


@dataclass(frozen=True)
class VersionRow:
    """What the page shows of one version."""

    version: str
    status: str
    tags: tuple[str, ...]
    experiment_key: str
    created: str
    size: str
    anchor: str
    requested: str | None  # the status a member asked for, awaiting an owner

    @classmethod
    def of(cls, record: dict) -> VersionRow:
        """The row of a store record."""
        created = datetime.fromtimestamp(record["createdAt"] / 1000, UTC)
        return cls(record["version"], record["status"], tuple(record["tags"]),
                   record["experimentKey"], created.strftime("%Y-%m-%d %H:%M:%S UTC"),
                   human_size(sum(a["fileSize"] for a in record["assets"])),
                   "v-" + quote(record["version"], safe=""),
                   (record.get("pendingStatus") or {}).get("status"))


def human_size(size: int) -> str:
    """Bytes in the largest unit that keeps a number of at least 1."""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"
