"""On-disk storage of the local registry: one JSON index and each version's zip as uploaded.

Layout under the data directory:

    registry.json           every workspace, model and version (rewritten atomically)
    zips/<itemId>.zip       a version's archive, byte for byte as uploaded
    tmp/                    uploads in progress; emptied at start

One lock guards the index; an upload streams to tmp/ outside it and is moved into zips/ by
rename under it, so readers see a version with its zip or not at all. One process per data
directory: the lock is in memory, and tmp/ is emptied at start.
"""

from __future__ import annotations

import copy
import json
import os
import re
import secrets
import shutil
import string
import tempfile
import threading
import time
import uuid
import zipfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

from common.versions import semver_key
from model_contract import logs

from . import webhooks

log = logs.get(__name__)

ALLOWED_STATUSES = ("None", "Development", "Staging", "Production")
SEMVER = re.compile(r"^(\d+)\.(\d+)\.(\d+)(?:-([0-9A-Za-z.-]+))?(?:\+[0-9A-Za-z.-]+)?$")
EMPTY_ZIP = b"PK\x05\x06" + b"\x00" * 18
CHUNK = 1024 * 1024
_ID_ALPHABET = string.ascii_letters + string.digits


class StoreError(Exception):
    """Base of the store's refusals; the web edge maps each to an HTTP status."""


class NotFound(StoreError):
    """A workspace's model, a version or an asset does not exist."""


class Conflict(StoreError):
    """The version already exists."""


class Invalid(StoreError):
    """A value is malformed, e.g. a version that is not semver or an unknown status."""


def new_id() -> str:
    """A 25-character alphanumeric id, shaped like Comet's registry ids."""
    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(25))


def now_ms() -> int:
    """The current time in epoch milliseconds."""
    return int(time.time() * 1000)


def newest_first(versions: Iterable[dict]) -> list[dict]:
    """Versions ordered newest first by createdAt, ties broken by the higher semver."""
    return sorted(versions, key=lambda v: (v["createdAt"], semver_key(v["version"])), reverse=True)


def zip_assets(path: Path) -> list[dict]:
    """The assets of a zip: one per file entry, as named in it; none if it is not a readable zip."""
    try:
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        return []
    return [
        {"assetId": uuid.uuid4().hex, "fileName": info.filename, "fileSize": info.file_size,
         "member": index}
        for index, info in enumerate(infos) if not info.is_dir()
    ]


class Store:
    """Workspaces, registry models and their versions, persisted under one directory."""

    def __init__(self, root: Path):
        self.root = root
        self.zips = root / "zips"
        self.tmp = root / "tmp"
        self._index = root / "registry.json"
        self._lock = threading.RLock()
        for folder in (self.zips, self.tmp):
            folder.mkdir(parents=True, exist_ok=True)
        for leftover in self.tmp.iterdir():
            leftover.unlink(missing_ok=True)
        self._models: dict[str, dict[str, dict]] = self._load()
        # told of every version created, deleted, or changed in status or tags (webhooks.py)
        self.on_event: Callable[[str, str, dict, dict], None] | None = None

    def _emit(self, trigger: str, model: dict, version: dict) -> None:
        """Tell the listener, with copies, of an event on a version (called under the lock)."""
        if self.on_event is None:
            return
        workspace = next((w for w, models in self._models.items()
                          if models.get(model["modelName"]) is model), "")
        self.on_event(trigger, workspace, copy.deepcopy(model), copy.deepcopy(version))

    def _emit_changes(self, model: dict, before: dict, after: dict) -> None:
        """Status and tag events between two states of a version."""
        if before["status"] != after["status"]:
            self._emit(webhooks.STATUS_CHANGED, model, after)
        if set(after["tags"]) - set(before["tags"]):
            self._emit(webhooks.TAG_ADDED, model, after)
        if set(before["tags"]) - set(after["tags"]):
            self._emit(webhooks.TAG_REMOVED, model, after)

    def _load(self) -> dict[str, dict[str, dict]]:
        if not self._index.exists():
            return {}
        return json.loads(self._index.read_text(encoding="utf-8"))["workspaces"]

    def _save(self) -> None:
        data = json.dumps({"format": 1, "workspaces": self._models}, indent=1)
        fd, tmp = tempfile.mkstemp(dir=self.root, prefix=".registry.", suffix=".json")
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, self._index)

    # Reads: every answer is a deep copy, so callers never see a half-applied write.

    def workspaces(self) -> list[str]:
        """Every workspace holding at least one model, by name."""
        with self._lock:
            return sorted(name for name, models in self._models.items() if models)

    def workspace_models(self, workspace: str) -> list[dict]:
        """Every model of a workspace (none for an unknown one), oldest first."""
        with self._lock:
            models = list(self._models.get(workspace, {}).values())
            return copy.deepcopy(sorted(models, key=lambda m: (m["createdAt"], m["modelName"])))

    def model(self, workspace: str, name: str) -> dict:
        """One model with its versions, newest first."""
        with self._lock:
            found = self._models.get(workspace, {}).get(name)
            if found is None:
                raise NotFound(f"Registry model {name!r} not found in workspace {workspace!r}")
            model = copy.deepcopy(found)
        model["versions"] = newest_first(model["versions"].values())
        return model

    def _all_versions(self) -> Iterator[tuple[str, dict, dict]]:
        for workspace, models in self._models.items():
            for model in models.values():
                for version in model["versions"].values():
                    yield workspace, model, version

    def _item(self, item_id: str) -> tuple[dict, dict]:
        for _, model, version in self._all_versions():
            if version["registryModelItemId"] == item_id:
                return model, version
        raise NotFound(f"Registry model item {item_id!r} not found")

    def item(self, item_id: str) -> tuple[dict, dict]:
        """The model (without versions) and the version of a registryModelItemId."""
        with self._lock:
            model, version = self._item(item_id)
            head = {k: v for k, v in model.items() if k != "versions"}
            return copy.deepcopy(head), copy.deepcopy(version)

    def asset(self, asset_id: str) -> tuple[dict, dict]:
        """The version and the asset of an assetId."""
        with self._lock:
            for _, _, version in self._all_versions():
                for asset in version["assets"]:
                    if asset["assetId"] == asset_id:
                        return copy.deepcopy(version), dict(asset)
        raise NotFound(f"Asset {asset_id!r} not found")

    def workspace_of_experiment(self, experiment_key: str) -> str | None:
        """The workspace holding a version registered from an experiment, if any."""
        with self._lock:
            return next((workspace for workspace, _, version in self._all_versions()
                         if version["experimentKey"] == experiment_key), None)

    def zip_path(self, item_id: str) -> Path:
        """Where the zip of a version is kept."""
        return self.zips / f"{item_id}.zip"

    # Writes.

    def receive(self, body: BinaryIO) -> Path:
        """Stream an upload into tmp/ chunk by chunk; the caller adds or discards it."""
        fd, name = tempfile.mkstemp(dir=self.tmp, suffix=".zip")
        with os.fdopen(fd, "wb") as out:
            shutil.copyfileobj(body, out, CHUNK)
            out.flush()
            os.fsync(out.fileno())
        return Path(name)

    def add_version(self, workspace: str, name: str, fields: dict[str, Any],
                    upload: Path | None, assets: list[dict] | None = None) -> tuple[str, str]:
        """Register a version (creating its model if missing) with the uploaded zip, if any."""
        version = fields["version"]
        if not SEMVER.match(version or ""):
            raise Invalid(f"Version {version!r} is not a semantic version such as 1.0.0")
        check_status(fields.get("status") or "None")
        if assets is None:
            assets = zip_assets(upload) if upload is not None else []
        with self._lock:
            model = self._models.get(workspace, {}).get(name)
            if model is not None and version in model["versions"]:
                raise Conflict(f"Version {version} of registry model {name!r} already exists")
            record = _new_version(fields, assets)
            if model is None:
                model = self._new_model(workspace, name, fields, record["createdAt"])
            target = self.zip_path(record["registryModelItemId"])
            if upload is not None:
                os.replace(upload, target)
            else:
                target.write_bytes(EMPTY_ZIP)
            model["versions"][version] = record
            model["lastUpdated"] = now_ms()
            self._save()
            self._emit(webhooks.CREATED, model, record)
        log.info("version_added", workspace=workspace, model=name, version=version,
                 item_id=record["registryModelItemId"], assets=len(assets))
        return model["registryModelId"], record["registryModelItemId"]

    def _new_model(self, workspace: str, name: str, fields: dict[str, Any], stamp: int) -> dict:
        model = {"registryModelId": new_id(), "modelName": name,
                 "description": fields.get("description") or "",
                 "isPublic": bool(fields.get("isPublic")), "userName": fields["userName"],
                 "createdAt": stamp, "lastUpdated": stamp, "notes": "", "versions": {}}
        self._models.setdefault(workspace, {})[name] = model
        return model

    def update_item(self, item_id: str, **changes: Any) -> dict:
        """Apply changes (status, tags, comment) to a version; returns the new version record."""
        if "status" in changes:
            check_status(changes["status"])
        with self._lock:
            model, version = self._item(item_id)
            before = copy.deepcopy(version)
            version.update(changes)
            version["lastUpdated"] = model["lastUpdated"] = now_ms()
            self._save()
            self._emit_changes(model, before, version)
            return copy.deepcopy(version)

    def apply(self, item_id: str, change: Callable[[dict, dict], None]) -> dict:
        """Run change(model, version) on a version's records under the lock; save; a copy."""
        with self._lock:
            model, version = self._item(item_id)
            before = copy.deepcopy(version)
            change(model, version)
            version["lastUpdated"] = model["lastUpdated"] = now_ms()
            self._save()
            self._emit_changes(model, before, version)
            return copy.deepcopy(version)

    def update_model(self, model_id: str, name: str | None, changes: dict[str, Any]) -> dict:
        """Rename a model and/or change its description / isPublic; a copy of its record."""
        with self._lock:
            for models in self._models.values():
                for current, model in models.items():
                    if model["registryModelId"] == model_id:
                        if name and name != current:
                            if name in models:
                                raise Conflict(f"Registry model {name!r} already exists")
                            models[name] = models.pop(current)
                            model["modelName"] = name
                        model.update(changes)
                        model["lastUpdated"] = now_ms()
                        self._save()
                        return {k: v for k, v in copy.deepcopy(model).items() if k != "versions"}
        raise NotFound(f"Registry model {model_id!r} not found")

    def set_webhooks(self, workspace: str, name: str, hooks: list[dict]) -> None:
        """Replace the webhook configuration of a model."""
        with self._lock:
            self.model(workspace, name)
            self._models[workspace][name]["webhooks"] = hooks
            self._save()

    def add_tag(self, item_id: str, tag: str) -> dict:
        """Add a tag to a version unless it already carries it."""
        with self._lock:
            _, version = self._item(item_id)
            tags = version["tags"] + ([tag] if tag not in version["tags"] else [])
            return self.update_item(item_id, tags=tags)

    def remove_tag(self, item_id: str, tag: str) -> dict:
        """Remove a tag from a version, matched case-insensitively."""
        with self._lock:
            _, version = self._item(item_id)
            tags = [t for t in version["tags"] if t.lower() != tag.lower()]
            return self.update_item(item_id, tags=tags)

    def delete_item(self, item_id: str) -> None:
        """Delete a version and its zip."""
        with self._lock:
            model, version = self._item(item_id)
            del model["versions"][version["version"]]
            model["lastUpdated"] = now_ms()
            self._save()
            self._emit(webhooks.DELETED, model, version)
            self.zip_path(item_id).unlink(missing_ok=True)
        log.info("version_deleted", model=model["modelName"], version=version["version"])

    def delete_model(self, workspace: str, name: str) -> None:
        """Delete a model with all its versions."""
        with self._lock:
            model = self.model(workspace, name)
            del self._models[workspace][name]
            self._save()
            for version in model["versions"]:
                self.zip_path(version["registryModelItemId"]).unlink(missing_ok=True)
        log.info("model_deleted", workspace=workspace, model=name)

    def set_notes(self, workspace: str, name: str, notes: str) -> None:
        """Replace the notes of a model."""
        with self._lock:
            self.model(workspace, name)
            self._models[workspace][name]["notes"] = notes
            self._save()


def check_status(status: str) -> None:
    """Refuse a status that is not one of the allowed values."""
    if status not in ALLOWED_STATUSES:
        raise Invalid(f"Status {status!r} is not one of {', '.join(ALLOWED_STATUSES)}")


def _new_version(fields: dict[str, Any], assets: list[dict]) -> dict:
    stamp = fields.get("createdAt") or now_ms()
    return {
        "registryModelItemId": new_id(),
        "version": fields["version"],
        "comment": fields.get("comment") or "",
        "tags": list(dict.fromkeys(fields.get("tags") or [])),
        "status": fields.get("status") or "None",
        "userName": fields["userName"],
        "createdAt": stamp,
        "lastUpdated": stamp,
        "experimentKey": fields.get("experimentKey") or uuid.uuid4().hex,
        "experimentModelId": uuid.uuid4().hex,
        "experimentModelName": fields.get("experimentModelName") or fields["modelName"],
        "assets": [{**a, "createdAt": stamp} for a in assets],
        "metadata": [],
        "statusConfiguration": None,
        "pendingStatus": None,
        "history": [{"actionType": "MODEL_VERSION_CREATED", "at": stamp,
                     "userName": fields["userName"], "newValue": {}, "previousValue": {},
                     "comment": None}],
    }
