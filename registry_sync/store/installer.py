"""Installing one registry model version into a folder: space check, download, describe.

The path is per asset when the registry gives a plan (Registry.plan); only a registry without
one (InstructionsMissing) gets the legacy whole-version zip, unpacked by archive.py.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path

from model_contract import logs
from model_contract.manifest import FileEntry, ModelEntry

from ..config import ArchiveLimits
from ..errors import InstructionsMissing, InsufficientSpace, Stopped
from ..registries.protocol import Registry
from ..registries.values import ModelVersion
from . import archive

log = logs.get(__name__)

SPACE_MARGIN = 16 * 1024 * 1024
PROGRESS_EVERY = 5.0


__all__ = ["ProgressLog", "Stopped", "ensure_free_space", "install"]


def ensure_free_space(folder: Path, version: str, size: int, copies: int = 1) -> None:
    """Refuse a download that would not fit: its files (twice for a zip), plus a margin."""
    needed = copies * size + SPACE_MARGIN
    free = shutil.disk_usage(folder).free
    if free < needed:
        what = "zip + unpacked + margin" if copies > 1 else "files + margin"
        raise InsufficientSpace(
            f"{version} needs {needed} bytes free under MODEL_ROOT ({what}), only {free} "
            "are: enlarge the volume or lower KEEP_SNAPSHOTS")


class ProgressLog:
    """Logs a long download's bytes and rate every few seconds, and counts the bytes."""

    def __init__(self, model: str, version: str, on_bytes: Callable[[int], None],
                 should_stop: Callable[[], bool], clock: Callable[[], float] = time.monotonic):
        self.model, self.version = model, version
        self._on_bytes, self._should_stop, self._clock = on_bytes, should_stop, clock
        self._started = self._last_log = clock()
        self._seen = 0

    def __call__(self, received: int, total: int | None) -> None:
        """Called after each chunk with the bytes so far and the expected total."""
        if received < self._seen:
            self._seen = 0  # the download restarted after a retry
        self._on_bytes(received - self._seen)
        self._seen = received
        now = self._clock()
        if now - self._last_log >= PROGRESS_EVERY:
            self._last_log = now
            rate = received / max(now - self._started, 1e-6)
            log.info("download_progress", model=self.model, version=self.version,
                     bytes=received, total=total, mb_per_second=round(rate / 1e6, 2))
        if self._should_stop():
            raise Stopped("stop requested during download")


def install(registry: Registry, name: str, version: ModelVersion, work_dir: Path,
            model_dir: Path, limits: ArchiveLimits, on_bytes: Callable[[int], None],
            should_stop: Callable[[], bool]) -> ModelEntry:
    """Download a version's assets into model_dir (via work_dir) and describe its files."""
    started = time.monotonic()
    progress = ProgressLog(name, version.version, on_bytes, should_stop)
    try:
        found = registry.plan(name, version, limits)
    except InstructionsMissing:
        path = "zip"
        files = _install_from_zip(registry, name, version, work_dir, model_dir, limits, progress,
                                  should_stop)
    else:
        path = "assets"
        ensure_free_space(work_dir, version.version, found.total_size)
        files = registry.fetch(found, work_dir, model_dir, progress)
    log.info("model_downloaded", model=name, version=version.version, path=path,
             bytes=sum(f.size for f in files), files=len(files),
             seconds=round(time.monotonic() - started, 3))
    return ModelEntry(workspace=registry.workspace, name=name, version=version.version,
                      registryModelItemId=version.registry_model_item_id,
                      status=version.status, experimentKey=version.experiment_key, files=files)


def _install_from_zip(registry: Registry, name: str, version: ModelVersion, work_dir: Path,
                      model_dir: Path, limits: ArchiveLimits, progress: ProgressLog,
                      should_stop: Callable[[], bool]) -> tuple[FileEntry, ...]:
    """The legacy path: the whole version's zip, checked and unpacked by archive.py."""
    ensure_free_space(work_dir, version.version, version.total_size, copies=2)
    zip_path = work_dir / f"{name}.zip"
    # the version's size bounds the whole download even when no Content-Length is announced
    registry.download_zip(name, version, zip_path, progress)
    files = archive.extract(zip_path, model_dir, version.assets, limits, should_stop)
    zip_path.unlink()
    return files
