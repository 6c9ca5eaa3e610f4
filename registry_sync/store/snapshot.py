"""Building a snapshot: every configured model at its chosen version, complete before it exists.

A snapshot is assembled under .staging/<id>/ and renamed into snapshots/<id>/ only after its
manifest is written and fsynced, and it leaves snapshots/ the same way (renamed into .staging/
first, then deleted), so a crash never leaves a partial folder there. Still, a folder is trusted
(hard-linked from, rolled back to, kept as is) only when every file of its manifest verifies:
sizes always, SHA-256 for files up to HASH_CHECK_MAX_BYTES, remembered per inode so that each
file is hashed once. A model version already present in a trusted snapshot is hard-linked from
there instead of downloaded again.
"""

from __future__ import annotations

import errno
import os
import secrets
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from model_contract import layout, logs, manifest
from model_contract.manifest import Manifest, ManifestError, ModelEntry

from ..registries.values import ModelVersion
from .state import manifest_key

log = logs.get(__name__)

Installer = Callable[[str, ModelVersion, Path, Path], ModelEntry]
HASH_CHECK_MAX_BYTES = 256 * 1024 * 1024
# (device, inode, size, mtime) -> SHA-256 of a file already hashed; snapshot files never change
_hashed: dict[tuple[int, int, int, int], str] = {}


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


_SHORTAGES = {errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS, errno.EAGAIN,
              errno.EINTR}


def surely_unpublished(root: Path) -> bool:
    """True only when surely nothing is published: a shortage of descriptors or memory while
    reading the manifest is not knowing, and never taken for "no snapshot"."""
    if read_current(root) is not None:
        return False
    snapshot_id = layout.current_snapshot_id(root)  # readlink: needs no descriptor
    if snapshot_id is None:
        return not os.path.lexists(root / layout.CURRENT)
    try:
        with open(layout.snapshot_path(root, snapshot_id) / manifest.MANIFEST_NAME, "rb"):
            return True  # it opens, yet did not parse: damaged, not a shortage
    except ValueError:
        return True
    except OSError as exc:
        return exc.errno not in _SHORTAGES


def installed_manifests(root: Path) -> list[Manifest]:
    """Manifests of every snapshot on disk with a readable manifest, newest first."""
    found = []
    for path in sorted(layout.snapshots_dir(root).glob("*"), reverse=True):
        try:
            found.append(manifest.read(path))
        except ManifestError:
            continue
    return found


def _verify_file(path: Path, size: int, sha256: str) -> str | None:
    """Why a snapshot file cannot be trusted, or None."""
    try:
        info = path.stat()
    except OSError:
        return "missing"
    if info.st_size != size:
        return f"{info.st_size} bytes, manifest says {size}"
    if size > HASH_CHECK_MAX_BYTES:
        return None
    identity = (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns)
    if identity not in _hashed:
        _hashed[identity] = manifest.sha256_of(path)
    return None if _hashed[identity] == sha256 else "does not match its SHA-256"


def damage(root: Path, snapshot_id: str) -> str | None:
    """Why the snapshot folder cannot be trusted, or None when every file verifies."""
    folder = layout.snapshot_path(root, snapshot_id)
    try:
        found = manifest.read(folder)
    except ManifestError as exc:
        return str(exc)
    if found.snapshotId != snapshot_id:
        return f"its manifest names snapshot {found.snapshotId}"
    for model in found.models:
        for entry in model.files:
            why = _verify_file(folder / model.name / entry.path, entry.size, entry.sha256)
            if why:
                return f"{model.name}/{entry.path} {why}"
    return None


def trusted(root: Path, snapshot_id: str | None) -> Manifest | None:
    """The snapshot's manifest if every file verifies, else None."""
    if not snapshot_id or damage(root, snapshot_id) is not None:
        return None
    return manifest.read(layout.snapshot_path(root, snapshot_id))


def trusted_manifests(root: Path) -> list[Manifest]:
    """Every snapshot that verifies, newest first; damaged ones (but `current`) are discarded."""
    current = layout.current_snapshot_id(root)
    found = []
    for path in sorted(layout.snapshots_dir(root).glob("*"), reverse=True):
        why = damage(root, path.name)
        if why is None:
            found.append(manifest.read(path))
        elif path.name != current:
            log.warning("snapshot_damaged", snapshot=path.name, problem=why, action="discarded")
            discard(root, path.name)
    return found


def find_set(root: Path, key: str) -> Manifest | None:
    """A trusted snapshot holding exactly this version set, if one is on disk."""
    return next((m for m in trusted_manifests(root) if manifest_key(m) == key), None)


def _find_installed(root: Path, name: str, version: ModelVersion) -> tuple[Path, ModelEntry] | None:
    for found in trusted_manifests(root):
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
    """Delete a snapshot: renamed out of snapshots/ first, so no crash leaves it half deleted."""
    source = layout.snapshot_path(root, snapshot_id)
    doomed = layout.staging_dir(root) / f"discarded-{snapshot_id}"
    layout.staging_dir(root).mkdir(exist_ok=True)
    shutil.rmtree(doomed, ignore_errors=True)  # left by a crash in an earlier discard
    try:
        os.rename(source, doomed)
    except FileNotFoundError:
        return
    manifest.fsync_dir(layout.snapshots_dir(root))
    shutil.rmtree(doomed, ignore_errors=True)
