"""The Comet registry client's operations: read models and versions, download, write.

Each is one or a few calls of the transport (transport.py: retries, deadlines, typed errors).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ...errors import (
    BadRequest,
    BadResponse,
    CometUnavailable,
    InstructionsMissing,
    ModelNotFound,
    VersionNotFound,
)
from ...settings import DEFAULT_MIN_DOWNLOAD_RATE as MIN_DOWNLOAD_RATE
from ...store.transfer import Retryable, content_length, receive
from ..values import ModelVersion, RegistryModel, check_identity, parse_model, parse_version_details
from .retry_policy import MAX_RETRY_HINT, retry_after_seconds
from .transport import CometTransport, ProgressFn

__all__ = [
    "MAX_RETRY_HINT",
    "MIN_DOWNLOAD_RATE",
    "CometClient",
    "CometTransport",
    "ProgressFn",
    "retry_after_seconds",
]


class CometClient(CometTransport):
    """A client of one Comet workspace's model registry."""

    def server_info(self) -> dict[str, Any]:
        """The server's isAlive/ver answer (its version, and whether it is a local registry)."""
        response = self._call("GET", "/clientlib/isAlive/ver")
        return self._json(response, "isAlive/ver")

    def list_model_names(self) -> list[str]:
        """Names of the registry models in the workspace."""
        body = self._get("registry-model", workspaceName=self.workspace)
        return [m["modelName"] for m in body.get("registryModels") or ()]

    def get_model(self, name: str) -> RegistryModel:
        """One registry model with all its versions: one request."""
        body = self._get("registry-model/details", ModelNotFound(self.workspace, name),
                         workspaceName=self.workspace, modelName=name)
        check_identity(body, self.workspace, name)
        return parse_model(self.workspace, body)

    def find_versions(self, name: str, *, status: str | None = None,
                      tag: str | None = None) -> list[str]:
        """Versions with the status (or tag), newest first, as the SDK's Model.find_versions."""
        params = {k: v for k, v in (("status", status), ("tag", tag)) if v is not None}
        body = self._get("registry-model/items", ModelNotFound(self.workspace, name),
                         workspaceName=self.workspace, modelName=name, **params)
        items = body.get("items")
        if not isinstance(items, list) or not all(
                isinstance(i, dict) and isinstance(i.get("version"), str) for i in items):
            raise BadResponse(f"registry-model/items of {name!r}: items is not a list of "
                              "{version}")
        return [i["version"] for i in items]

    def version_details(self, name: str, version: str) -> ModelVersion:
        """One version's facts from registry-model/item/details, as the SDK's Model.get_details."""
        body = self._get("registry-model/item/details",
                         VersionNotFound(self.workspace, name, version),
                         workspaceName=self.workspace, modelName=name, version=version)
        return parse_version_details(name, version, body)

    def allowed_statuses(self) -> tuple[str, ...] | None:
        """The workspace's allowed status values; None where the server has no such list."""
        try:
            body = self._get("registry-model/allowed_status_values", BadRequest("none"),
                             workspaceName=self.workspace)
        except BadRequest:
            return None
        found = body.get("allowedStatus")
        if not isinstance(found, list) or not all(isinstance(s, str) for s in found):
            raise BadResponse("registry-model/allowed_status_values: allowedStatus is not a "
                              "list of names")
        return tuple(found)

    def download(self, name: str, version: str, dest: Path, progress: ProgressFn | None = None,
                 expected_size: int | None = None) -> int:
        """Stream the version's zip (the legacy whole-version endpoint) into dest; its bytes."""
        return self.retrying(self._download_once, name, version, dest, progress, expected_size)

    def download_instructions(self, name: str, version: str) -> dict[str, Any]:
        """Where each asset of a version comes from; InstructionsMissing on a 404."""
        return self._get("registry-model/item/download-instructions",
                         InstructionsMissing(f"{self.settings.url} has no download-instructions "
                                             f"for {name} {version}"),
                         workspaceName=self.workspace, modelName=name, version=version)

    def _download_once(self, name: str, version: str, dest: Path, progress: ProgressFn | None,
                       expected_size: int | None) -> int:
        params = {"workspaceName": self.workspace, "modelName": name, "version": version}
        response = self.attempt("GET", "registry-model/item/download",
                                VersionNotFound(self.workspace, name, version), params=params,
                                stream=True, timeout=self.download_timeouts())
        total = content_length(response) or expected_size
        received = 0

        def count(size: int) -> None:
            nonlocal received
            received += size
            if progress:
                progress(received, total)

        with open(dest, "wb") as out:
            return receive(response, out, what=f"download of {name} {version}",
                           deadline=self.download_deadline(total or 0), clock=self._clock,
                           on_chunk=count)

    def set_status(self, name: str, version: str, status: str) -> None:
        """Set a version's status (promote or demote), as the Comet UI does."""
        item = self._item_id(name, version)
        self._call("POST", "write/registry-model/item/status",
                   json={"status": status, "modelItemId": item})

    def add_tag(self, name: str, version: str, tag: str) -> None:
        """Add a tag (the old "stage") to a version."""
        self._call("GET", "write/registry-model/item/stage",
                   params={"modelItemId": self._item_id(name, version), "stage": tag})

    def remove_tag(self, name: str, version: str, tag: str) -> None:
        """Remove a tag from a version."""
        self._call("GET", "write/registry-model/item/stage/delete",
                   params={"modelItemId": self._item_id(name, version), "stage": tag})

    def version_history(self, item_id: str) -> list[dict[str, Any]]:
        """A version's history events, every day's together (registry-model/history/item)."""
        body = self._json(self._call("POST", "registry-model/history/item",
                                     json={"registryModelItemId": item_id, "groupedBy": "DAY"}),
                          "history/item")
        return [{**e, "day": day} for day, events in body.items() if isinstance(events, list)
                for e in events if isinstance(e, dict)]

    def set_metadata(self, item_id: str, metadata: dict[str, str]) -> None:
        """Add key/value metadata to a version."""
        self._call("POST", f"write/registry-model/item/{item_id}/metadata",
                   endpoint="write/registry-model/item/{id}/metadata",
                   json={"metadata": [{"key": k, "value": v} for k, v in metadata.items()]})

    def set_status_configuration(self, item_id: str, status: str, review_required: bool) -> None:
        """Say whether a change of the version to `status` needs an owner's review."""
        self._call("POST", f"write/registry-model/item/{item_id}/status-configuration",
                   endpoint="write/registry-model/item/{id}/status-configuration",
                   json={"status": status, "isReviewRequired": review_required,
                         "statusConfiguration": []})

    def item_id(self, name: str, version: str) -> str:
        """The registryModelItemId of a version (one details request)."""
        return self._item_id(name, version)

    def _item_id(self, name: str, version: str) -> str:
        found = self.get_model(name).version(version)
        if found is None:
            raise VersionNotFound(self.workspace, name, version)
        return found.registry_model_item_id

    def upload(self, name: str, version: str, archive: Path, *, status: str = "None",
               tags: tuple[str, ...] = (), comment: str = "",
               experiment_key: str = "") -> dict[str, Any]:
        """Register a version with its zipped files through the local registry's upload call."""
        params = {"workspaceName": self.workspace, "registryModelName": name,
                  "version": version, "status": status, "tags": ",".join(tags),
                  "comment": comment, "experimentKey": experiment_key}
        # One attempt only: a streamed body cannot be replayed, and a retry could register twice.
        with open(archive, "rb") as body:
            try:
                response = self.attempt(
                    "POST", "write/registry-model/item/upload", None,
                    params={k: v for k, v in params.items() if v}, data=body,
                    extra_headers={"Content-Type": "application/zip"},
                    timeout=(self.settings.timeout, self.settings.download_timeout))
            except Retryable as exc:
                raise CometUnavailable(f"upload of {name} {version} failed: {exc}") from exc
        return self._json(response, "item/upload")
