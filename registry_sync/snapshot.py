"""Building a snapshot: every configured model at its chosen version, complete before it exists.

A snapshot is assembled under .staging/<id>/ and renamed into snapshots/<id>/ only after its
manifest is written and fsynced, so snapshots/ never holds a partial one. A model version already
present in any snapshot on disk is hard-linked from there instead of downloaded again.
"""

from __future__ import annotations

import os
import secrets
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from model_contract import layout, manifest
from model_contract.manifest import Manifest, ManifestError, ModelEntry

from .registry import ModelVersion

Installer = Callable[[str, ModelVersion, Path, Path], ModelEntry]


def new_snapshot_id(now: float | None = None) -> str:
    """A sortable, unique snapshot id: UTC time and a random suffix."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now if now is not None else time.time()))
    return f"{stamp}-{secrets.token_hex(3)}"


def clean_staging(root: Path) -> None:
    """Remove whatever an interrupted run left in .staging."""
    shutil.rmtree(layout.staging_dir(root), ignore_errors=True)


def read_current(root: Path) -> Manifest | None:
    """The manifest of the published snapshot, or None if nothing (readable) is published."""
    snapshot_id = layout.current_snapshot_id(root)
    if snapshot_id is None:
        return None
    try:
        return manifest.read(layout.snapshot_path(root, snapshot_id))
    except (ManifestError, ValueError):
        return None


def installed_manifests(root: Path) -> list[Manifest]:
    """Manifests of every complete snapshot on disk, newest first."""
    found = []
    for path in sorted(layout.snapshots_dir(root).glob("*"), reverse=True):
        try:
            found.append(manifest.read(path))
        except ManifestError:
            continue
    return found


def _find_installed(root: Path, name: str, version: ModelVersion) -> tuple[Path, ModelEntry] | None:
    for found in installed_manifests(root):
        entry = found.model(name)
        if entry and entry.key == version.key:
            return layout.snapshot_path(root, found.snapshotId) / name, entry
    return None


def _link_tree(source: Path, target: Path) -> None:
    """Recreate source's folders under target and hard-link its files."""
    for folder, _dirs, files in os.walk(source):
        relative = Path(folder).relative_to(source)
        (target / relative).mkdir(parents=True, exist_ok=True)
        for name in files:
            os.link(Path(folder) / name, target / relative / name)


def build(root: Path, chosen: list[tuple[str, ModelVersion]], install: Installer) -> Manifest:
    """Assemble a complete snapshot of the chosen versions and move it into snapshots/."""
    snapshot_id = new_snapshot_id()
    staging = layout.staging_dir(root) / snapshot_id
    staging.mkdir(parents=True)
    try:
        entries = []
        for name, version in chosen:
            installed = _find_installed(root, name, version)
            if installed:
                _link_tree(installed[0], staging / name)
                entries.append(installed[1])
            else:
                entries.append(install(name, version, staging, staging / name))
        built = Manifest(snapshotId=snapshot_id,
                         createdAt=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                         models=tuple(entries))
        manifest.write(staging, built)
        layout.snapshots_dir(root).mkdir(exist_ok=True)
        os.rename(staging, layout.snapshot_path(root, snapshot_id))
        manifest.fsync_dir(layout.snapshots_dir(root))
        return built
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def discard(root: Path, snapshot_id: str) -> None:
    """Delete a snapshot that will not be published (rejected by serving)."""
    shutil.rmtree(layout.snapshot_path(root, snapshot_id), ignore_errors=True)
