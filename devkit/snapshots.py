"""Complete snapshots in a temporary MODEL_ROOT, built the way the sidecar builds them.

    from devkit.snapshots import build_snapshot
    snapshot_id = build_snapshot(root, {"diamonds-classifier": folder}, versions="1.1.0")

Each registry model's folder is copied under .staging/<id>/<name>/, manifest.json is written
with model_contract.manifest.write, the folder is renamed into snapshots/<id>, and (unless
publish=False) `current` is pointed at it with registry_sync.store.publish.publish.
"""

from __future__ import annotations

import os
import secrets
import shutil
import time
from collections.abc import Mapping
from pathlib import Path

from model_contract import layout, manifest
from model_contract.manifest import FileEntry, Manifest, ModelEntry
from registry_sync.store.publish import publish as publish_snapshot

WORKSPACE = "test-ws"


def new_snapshot_id() -> str:
    """A sortable, unique snapshot id like the sidecar's."""
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + secrets.token_hex(3)


def file_entries(folder: Path) -> tuple[FileEntry, ...]:
    """Every file under a model folder, with size and SHA-256, paths relative to it."""
    return tuple(FileEntry(p.relative_to(folder).as_posix(), p.stat().st_size,
                           manifest.sha256_of(p))
                 for p in sorted(folder.rglob("*")) if p.is_file())


def build_snapshot(root: Path, models: Mapping[str, Path],
                   versions: str | Mapping[str, str] = "1.0.0", snapshot_id: str | None = None,
                   publish: bool = True) -> str:
    """Build snapshots/<id> from registry model folders (name -> folder); return its id."""
    snapshot_id = snapshot_id or new_snapshot_id()
    staging = layout.staging_dir(root) / snapshot_id
    staging.mkdir(parents=True)
    entries = []
    for name, source in models.items():
        version = versions if isinstance(versions, str) else versions[name]
        shutil.copytree(source, staging / name)
        entries.append(ModelEntry(WORKSPACE, name, version, f"item-{name}-{version}",
                                  "Production", f"exp-{snapshot_id}", file_entries(staging / name)))
    created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    manifest.write(staging, Manifest(snapshot_id, created, tuple(entries)))
    target = layout.snapshot_path(root, snapshot_id)
    target.parent.mkdir(parents=True, exist_ok=True)
    os.rename(staging, target)
    if publish:
        publish_snapshot(root, snapshot_id)
    return snapshot_id


def seed_models(folder: Path) -> dict[str, Path]:
    """The registry models of a seed-layout training folder (one sub-folder each)."""
    return {sub.name: sub for sub in sorted(folder.iterdir()) if sub.is_dir()}
