"""The registry's objects as typed values, parsed from Comet's JSON.

Which version is "production" is found the SDK's way, in finder.py: a version's `status` and
`tags` are trusted only from `registry-model/item/details` (what Model.status / Model.tags
read), never from `registry-model/details`, whose versions may carry neither.

Trust: an answer must be about what was asked. A details answer naming another registry model
(or another workspace, when it names one) is refused, and so is a chosen version whose assets
come from another experiment than the version's own (by their experimentKey, or the one in
their link): BadResponse, so nothing of it is downloaded.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

from common.versions import semver_key  # noqa: F401 - re-exported: the one version ordering

from ..errors import BadResponse, UnsafeValue

# Comet documents versions as semantic versions (semver.org 2.0.0; the SDK refuses others).
SEMVER = re.compile(r"(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
                    r"(-[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?(\+[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?")
SAFE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
SAFE_STATUS = re.compile(r"[A-Za-z0-9][A-Za-z0-9 ._-]{0,63}")
MAX_VERSION = 64
MAX_FILE_NAME = 1024


@dataclass(frozen=True)
class Asset:
    """One file of a registry model version."""

    file_name: str
    file_size: int
    asset_id: str
    experiment_key: str
    link: str = ""

    def link_experiment_key(self) -> str | None:
        """The experimentKey its download link names, or None if it has no link or none there."""
        if not self.link:
            return None
        keys = parse_qs(urlsplit(self.link).query).get("experimentKey")
        return keys[0] if keys else None


@dataclass(frozen=True)
class ModelVersion:
    """One version of a registry model."""

    version: str
    registry_model_item_id: str
    status: str
    tags: tuple[str, ...]
    stages: tuple[str, ...]
    experiment_key: str
    created_at: int
    comment: str
    assets: tuple[Asset, ...]
    last_updated: int = 0

    @property
    def key(self) -> tuple[str, str]:
        """What identifies this version across polls: version and registry item id."""
        return self.version, self.registry_model_item_id

    @property
    def total_size(self) -> int:
        """Sum of the assets' sizes in bytes, as the registry reports them."""
        return sum(a.file_size for a in self.assets)

    def carries(self, tag: str) -> bool:
        """True if the version carries the tag or legacy stage, ignoring case."""
        wanted = tag.casefold()
        return any(t.casefold() == wanted for t in (*self.tags, *self.stages))


@dataclass(frozen=True)
class RegistryModel:
    """A registry model with all its versions."""

    workspace: str
    name: str
    registry_model_id: str
    versions: tuple[ModelVersion, ...]

    def version(self, version: str) -> ModelVersion | None:
        """One version by its version string, or None."""
        return next((v for v in self.versions if v.version == version), None)


def check_identity(raw: Mapping[str, Any], workspace: str, name: str) -> None:
    """BadResponse unless a details answer is about the registry model (and workspace) asked for."""
    answered = raw.get("modelName") if isinstance(raw, Mapping) else None
    if answered != name:
        raise BadResponse(f"registry-model/details answered for registry model {answered!r} "
                          f"when asked for {name!r}: refused")
    other = raw.get("workspaceName")
    if other is not None and other != workspace:
        raise BadResponse(f"registry-model/details of {name!r} answered for workspace {other!r} "
                          f"instead of {workspace!r}: refused")


def check_assets(name: str, version: ModelVersion) -> None:
    """BadResponse unless every asset of the version belongs to the version's own experiment."""
    own = version.experiment_key
    for asset in version.assets:
        keys = {k for k in (asset.experiment_key, asset.link_experiment_key()) if k}
        foreign = sorted(k for k in keys if own and k != own)
        if foreign or len(keys) > 1:
            raise BadResponse(
                f"asset {asset.file_name!r} of {name} {version.version} belongs to experiment "
                f"{', '.join(sorted(keys))}, not to the version's experiment {own or '(none)'}: "
                "refused")


def parse_model(workspace: str, raw: Mapping[str, Any]) -> RegistryModel:
    """Parse the answer of registry-model/details; BadResponse if it lacks what we need."""
    try:
        return RegistryModel(
            workspace=workspace,
            name=raw["modelName"],
            registry_model_id=str(raw.get("registryModelId", "")),
            versions=tuple(_parse_version(v) for v in raw.get("versions") or ()),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise BadResponse(f"registry-model/details has an unexpected shape: {exc!r}") from None


def parse_version_details(name: str, version: str, raw: Any) -> ModelVersion:
    """Parse an item/details answer; BadResponse unless it is about the version asked for."""
    if not isinstance(raw, Mapping) or raw.get("version") != version:
        answered = raw.get("version") if isinstance(raw, Mapping) else None
        raise BadResponse(f"registry-model/item/details answered for version {answered!r} of "
                          f"{name!r} when asked for {version!r}: refused")
    try:
        return _parse_version(raw)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise BadResponse(f"registry-model/item/details of {name} {version} has an unexpected "
                          f"shape: {exc!r}") from None


def _parse_version(raw: Mapping[str, Any]) -> ModelVersion:
    experiment = raw.get("experimentModel") or {"experimentKey": raw.get("experimentKey")}
    return ModelVersion(
        version=str(raw["version"]),
        registry_model_item_id=str(raw["registryModelItemId"]),
        status=str(raw.get("status") or "None"),
        tags=tuple(raw.get("tags") or ()),
        stages=tuple(raw.get("stages") or ()),
        experiment_key=str(experiment.get("experimentKey") or ""),
        created_at=int(raw.get("createdAt") or 0),
        last_updated=int(raw.get("lastUpdated") or raw.get("createdAt") or 0),
        comment=str(raw.get("comment") or ""),
        assets=tuple(
            Asset(str(a["fileName"]), int(a.get("fileSize") or 0), str(a.get("assetId", "")),
                  str(a.get("experimentKey") or experiment.get("experimentKey") or ""),
                  str(a.get("link") or ""))
            for a in raw.get("assets") or ()
        ),
    )


def check_values(name: str, version: ModelVersion) -> None:
    """UnsafeValue naming the field, unless every value that reaches disk, logs or headers is safe.

    The version must be semver, ids and the status bounded safe strings, file names printable:
    such values go into HTTP headers, file paths, log lines and metric labels downstream.
    """
    if len(version.version) > MAX_VERSION or not SEMVER.fullmatch(version.version):
        raise UnsafeValue(name, "version", version.version,
                          f"a semantic version such as 1.2.0 (at most {MAX_VERSION} characters)")
    ids = [("registryModelItemId", version.registry_model_item_id)]
    ids += [("experimentKey", version.experiment_key)] if version.experiment_key else []
    ids += [(f"assets[{a.file_name[:40]!r}].assetId", a.asset_id) for a in version.assets
            if a.asset_id]
    for field, value in ids:
        if not SAFE_ID.fullmatch(value):
            raise UnsafeValue(name, field, value, "1-128 letters, digits, '.', '_' or '-'")
    if not SAFE_STATUS.fullmatch(version.status):
        raise UnsafeValue(name, "status", version.status,
                          "1-64 letters, digits, spaces, '.', '_' or '-'")
    for asset in version.assets:
        if (not asset.file_name or len(asset.file_name.encode("utf-8", "surrogatepass"))
                > MAX_FILE_NAME or not asset.file_name.isprintable()):
            raise UnsafeValue(name, "fileName", asset.file_name,
                              f"a printable relative path of at most {MAX_FILE_NAME} bytes")
