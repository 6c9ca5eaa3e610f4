"""manifest.json: what a snapshot holds, written last and fsynced, checked by whoever reads it."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

MANIFEST_NAME = "manifest.json"
FORMAT_VERSION = 1
_CHUNK = 1024 * 1024


class ManifestError(Exception):
    """A snapshot's manifest is missing, malformed, or disagrees with the files on disk."""


@dataclass(frozen=True)
class FileEntry:
    """One file of a registry model, relative to the model's folder in the snapshot."""

    path: str
    size: int
    sha256: str


@dataclass(frozen=True)
class ModelEntry:
    """One registry model at the version the snapshot holds."""

    workspace: str
    name: str
    version: str
    registryModelItemId: str  # the registry's own field name
    status: str
    experimentKey: str
    files: tuple[FileEntry, ...] = ()

    @property
    def key(self) -> tuple[str, str]:
        """What identifies this version: the version and its registry item id."""
        return self.version, self.registryModelItemId


@dataclass(frozen=True)
class Manifest:
    """The whole snapshot: its id, when it was built, and its models in configured order."""

    snapshotId: str
    createdAt: str
    models: tuple[ModelEntry, ...] = field(default_factory=tuple)
    formatVersion: int = FORMAT_VERSION

    def model(self, name: str) -> ModelEntry | None:
        """The entry of one registry model, or None."""
        return next((m for m in self.models if m.name == name), None)

    @property
    def versions(self) -> dict[str, str]:
        """Registry model name -> version."""
        return {m.name: m.version for m in self.models}

    @property
    def version_set(self) -> str:
        """The short digest naming its version set, the same in every replica."""
        return version_set(self.versions)

    def to_json(self) -> str:
        """The manifest as the JSON text written to disk."""
        return json.dumps(asdict(self), indent=2, sort_keys=True)


def sha256_of(path: Path) -> str:
    """SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def write(snapshot_dir: Path, manifest: Manifest) -> None:
    """Write manifest.json durably: temp file, fsync, rename, fsync the folder."""
    write_durably(snapshot_dir / MANIFEST_NAME, manifest.to_json())


def write_durably(target: Path, text: str) -> None:
    """Replace `target` by `text` whole: a temp file beside it fsynced, renamed, folder fsynced."""
    temp = target.with_name(target.name + ".tmp")
    with open(temp, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temp, target)
    fsync_dir(target.parent)


def fsync_dir(directory: Path) -> None:
    """Make a rename or a new entry in a folder durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read(snapshot_dir: Path) -> Manifest:
    """Read and parse a snapshot's manifest; ManifestError if absent or malformed."""
    try:
        raw = json.loads((snapshot_dir / MANIFEST_NAME).read_text(encoding="utf-8"))
        models = tuple(
            ModelEntry(**{**m, "files": tuple(FileEntry(**f) for f in m["files"])})
            for m in raw["models"]
        )
        return Manifest(raw["snapshotId"], raw["createdAt"], models,
                        raw.get("formatVersion", FORMAT_VERSION))
    except FileNotFoundError:
        raise ManifestError(f"{snapshot_dir.name}: no {MANIFEST_NAME}") from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ManifestError(f"{snapshot_dir.name}: unreadable {MANIFEST_NAME}: {exc}") from None


def verify(snapshot_dir: Path, manifest: Manifest, check_hashes: bool = True) -> None:
    """Check that every file the manifest names is there with its size (and hash)."""
    if manifest.snapshotId != snapshot_dir.name:
        raise ManifestError(f"manifest names snapshot {manifest.snapshotId}, folder is "
                            f"{snapshot_dir.name}")
    for model in manifest.models:
        for entry in model.files:
            path = snapshot_dir / model.name / entry.path
            try:
                size = path.stat().st_size
            except OSError:
                raise ManifestError(f"{model.name}/{entry.path} is missing") from None
            if size != entry.size:
                raise ManifestError(f"{model.name}/{entry.path} is {size} bytes, "
                                    f"manifest says {entry.size}")
            if check_hashes and sha256_of(path) != entry.sha256:
                raise ManifestError(f"{model.name}/{entry.path} does not match its SHA-256")


def version_set(versions: dict[str, str]) -> str:
    """A 12-hex digest of registry model name -> version: the same set in every pod, whatever
    its snapshot id (the promotion guard sums figures over pods by it)."""
    text = json.dumps(sorted(versions.items()), separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:12]
