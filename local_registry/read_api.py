"""The read endpoints of docs/comet-api.md §2, under /api/rest/v2/."""

from __future__ import annotations

from flask import Blueprint, request
from werkzeug.wsgi import FileWrapper

from . import shapes
from .assets import presigned_link, stream
from .store import ALLOWED_STATUSES, CHUNK, SEMVER, NotFound, newest_first
from .web import ApiError, arg, json_response, state, workspace_arg

bp = Blueprint("read_api", __name__)


def _root() -> str:
    return request.host_url.rstrip("/")


def _model() -> dict:
    return state().store.model(workspace_arg(), arg("modelName"))


@bp.get("/registry-model")
def models():
    """Every registry model of a workspace."""
    found = state().store.workspace_models(workspace_arg())
    for model in found:
        model["versions"] = newest_first(model["versions"].values())
    return json_response({"registryModels": [shapes.overview(m, _root()) for m in found]})


@bp.get("/registry-model/count")
def count():
    """How many registry models a workspace holds."""
    found = state().store.workspace_models(workspace_arg())
    return json_response({"registryModelCount": len(found)})


@bp.get("/registry-model/details")
def details():
    """A model with all its versions, newest first (without status/tags in the "sdk" shape)."""
    return json_response(shapes.details(_model(), _root(),
                                        strict=state().details_shape == "sdk"))


@bp.get("/registry-model/compact-details")
def compact_details():
    """Only the id of a model."""
    return json_response({"registryModelId": _model()["registryModelId"]})


@bp.get("/registry-model/item/details")
def item_details():
    """One version, with its assets."""
    model, wanted = _model(), arg("version")
    return json_response(shapes.version(_by_version(model, wanted), _root()))


@bp.get("/registry-model/items")
def items():
    """Versions filtered by status, tag and version prefix, newest first."""
    model = _model()
    status, tag = arg("status", False), arg("tag", False)
    prefix = arg("versionPrefix", False)
    chosen = [
        v for v in model["versions"]
        if (status is None or v["status"] == status)
        and (tag is None or _has_tag(v, tag))
        and (prefix is None or _has_prefix(v["version"], prefix))
    ]
    return json_response({"items": [{"version": v["version"]} for v in chosen]})


@bp.get("/registry-model/allowed_status_values")
def allowed_status_values():
    """The statuses a version may have."""
    workspace_arg()
    return json_response({"allowedStatus": list(ALLOWED_STATUSES)})


@bp.get("/registry-model/latest_version")
def latest_version():
    """The model with only its newest version (optionally with a stage, major, minor)."""
    model = _model()
    stage = arg("stage", False)
    major, minor = arg("versionMajor", False), arg("versionMinor", False)
    chosen = [
        v for v in model["versions"]
        if (stage is None or _has_tag(v, stage))
        and (major is None or _part(v["version"], 0) == major)
        and (minor is None or _part(v["version"], 1) == minor)
    ]
    return json_response(shapes.details(model, _root(), chosen[:1],
                                        strict=state().details_shape == "sdk"))


@bp.get("/registry-model/item/download")
def download():
    """The zip of a version, streamed byte for byte as uploaded."""
    model = _model()
    chosen = _select(model)
    path = state().store.zip_path(chosen["registryModelItemId"])
    try:
        handle = open(path, "rb")  # noqa: SIM115 - closed by the response when sent
    except FileNotFoundError:
        raise ApiError(404, f"Version {chosen['version']} was deleted") from None
    response = stream(FileWrapper(handle, CHUNK), path.stat().st_size, handle.close)
    response.headers.set("Content-Disposition", "attachment",
                         filename=f"{model['modelName']}_{chosen['version']}.zip")
    return response


@bp.get("/registry-model/item/download-instructions")
def download_instructions():
    """Where each asset of a version can be downloaded from: here, or by presigned links."""
    chosen = _select(_model())
    presigned = state().presigned
    shape = shapes.version(chosen, _root(), presign=presigned_link if presigned else None)
    return json_response({"s3DownloadEnabled": presigned, "versions": [shape]})


@bp.get("/registry-model/notes")
def notes():
    """The notes of a model."""
    return json_response({"notes": _model()["notes"]})


def _select(model: dict) -> dict:
    """The version a download names by `version` or `stage`; the newest if neither."""
    wanted, stage = arg("version", False), arg("stage", False)
    if wanted and stage:
        raise ApiError(400, "Give either 'version' or 'stage', not both")
    if wanted:
        return _by_version(model, wanted)
    chosen = [v for v in model["versions"] if stage is None or _has_tag(v, stage)]
    if not chosen:
        what = f"with stage {stage!r}" if stage else "at all"
        raise ApiError(404, f"Registry model {model['modelName']!r} has no version {what}")
    return chosen[0]


def _by_version(model: dict, wanted: str) -> dict:
    for version in model["versions"]:
        if version["version"] == wanted:
            return version
    raise NotFound(f"Version {wanted!r} of registry model {model['modelName']!r} not found")


def _has_tag(version: dict, tag: str) -> bool:
    return tag.lower() in (t.lower() for t in version["tags"])


def _has_prefix(version: str, prefix: str) -> bool:
    """Prefix by whole dot-separated parts: "2.1" finds 2.1.0 and 2.1.1, never 2.10.0."""
    prefix = prefix.rstrip(".")
    return not prefix or version == prefix or version.startswith((prefix + ".", prefix + "-"))


def _part(version: str, index: int) -> str | None:
    match = SEMVER.match(version)
    return match.group(index + 1) if match else None
