"""The JSON shapes of docs/comet-api.md §2 and §3, built from the store's records."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

API = "/api/rest/v2/"
MODEL_FIELDS = ("registryModelId", "modelName", "description", "isPublic", "userName",
                "createdAt", "lastUpdated")


Presign = Callable[[str, str], str]
# "full": each version of registry-model/details carries status and tags (our superset);
# "sdk": exactly the SDK docstring's shape (API.get_registry_model_details): neither, as real
# Comet may answer; status and tags then come only from item/details and items?status=&tag=.
DETAILS_SHAPES = ("full", "sdk")
SDK_HIDDEN = ("status", "tags", "restApiUrl")


def asset(version: dict, record: dict, root: str,
          presign: Presign | None = None) -> dict[str, Any]:
    """One asset of a version; its link carries the experimentKey, as the SDK needs.

    A remote asset (registered with a `link` that is not ours) keeps that URI as its link.
    """
    key = version["experimentKey"]
    query = urlencode({"assetId": record["assetId"], "experimentKey": key})
    remote = record.get("remoteLink")
    return {
        "fileName": record["fileName"],
        "fileSize": record["fileSize"],
        "assetId": record["assetId"],
        "experimentKey": key,
        "type": "model-element",
        "metadata": record.get("metadata"),
        "remote": bool(remote),
        "s3Link": presign(root, record["assetId"]) if presign and not remote else None,
        "dir": f"models/{version['experimentModelName']}",
        "link": remote or f"{root}{API}experiment/asset/get-asset?{query}",
        "createdAt": record["createdAt"],
        "tags": [],
    }


def version(record: dict, root: str, with_assets: bool = True,
            presign: Presign | None = None) -> dict[str, Any]:
    """A version object; `stages` mirrors the tags, lowercased."""
    shape = {
        "registryModelItemId": record["registryModelItemId"],
        "experimentModel": {
            "experimentModelId": record["experimentModelId"],
            "experimentModelName": record["experimentModelName"],
            "experimentKey": record["experimentKey"],
        },
        "version": record["version"],
        "comment": record["comment"],
        "stages": list(dict.fromkeys(tag.lower() for tag in record["tags"])),
        "tags": list(record["tags"]),
        "status": record["status"],
        "userName": record["userName"],
        "createdAt": record["createdAt"],
        "lastUpdated": record["lastUpdated"],
        "restApiUrl": None,
    }
    if with_assets:
        shape["assets"] = [asset(record, a, root, presign) for a in record["assets"]]
    return shape


def overview(model: dict, root: str) -> dict[str, Any]:
    """A model in the workspace listing: its fields, version count and latest version."""
    shape = {name: model[name] for name in MODEL_FIELDS}
    shape["numberOfVersions"] = len(model["versions"])
    latest = model["versions"][0] if model["versions"] else None
    shape["latestVersion"] = version(latest, root, with_assets=False) if latest else None
    return shape


def details(model: dict, root: str, versions: list[dict] | None = None,
            strict: bool = False) -> dict[str, Any]:
    """A model with its versions (all of them, or those given), newest first.

    strict: the SDK docstring's shape, versions without status and tags.
    """
    shape = {name: model[name] for name in MODEL_FIELDS}
    shape["numberOfVersions"] = len(model["versions"])
    chosen = model["versions"] if versions is None else versions
    shape["versions"] = [version(v, root) for v in chosen]
    if strict:
        shape["versions"] = [{k: v for k, v in each.items() if k not in SDK_HIDDEN}
                             for each in shape["versions"]]
    return shape
