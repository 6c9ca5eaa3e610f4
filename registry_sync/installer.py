"""Installing one registry model version into a folder: space check, streamed download, unzip."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path

from model_contract import logs
from model_contract.manifest import ModelEntry

from . import archive
from .comet import CometClient
from .config import ArchiveLimits
from .errors import InsufficientSpace, Stopped
from .registry import ModelVersion

log = logs.get(__name__)

SPACE_MARGIN = 16 * 1024 * 1024
PROGRESS_EVERY = 5.0


__all__ = ["ProgressLog", "Stopped", "ensure_free_space", "install"]


def ensure_free_space(folder: Path, version: ModelVersion) -> None:
    """Refuse a download that would not fit: the zip and its unpacked files, plus a margin."""
    needed = 2 * version.total_size + SPACE_MARGIN
    free = shutil.disk_usage(folder).free
    if free < needed:
        raise InsufficientSpace(
            f"{version.version} needs {needed} bytes free under MODEL_ROOT (zip + unpacked "
            f"+ margin), only {free} are: enlarge the volume or lower KEEP_SNAPSHOTS")


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


def install(client: CometClient, name: str, version: ModelVersion, work_dir: Path,
            model_dir: Path, limits: ArchiveLimits, on_bytes: Callable[[int], None],
            should_stop: Callable[[], bool]) -> ModelEntry:
    """Download a version's zip into work_dir, unpack it into model_dir, describe its files."""
    ensure_free_space(work_dir, version)
    zip_path = work_dir / f"{name}.zip"
    started = time.monotonic()
    progress = ProgressLog(name, version.version, on_bytes, should_stop)
    size = client.download(name, version.version, zip_path, progress)
    files = archive.extract(zip_path, model_dir, version.assets, limits, should_stop)
    zip_path.unlink()
    log.info("model_downloaded", model=name, version=version.version, bytes=size,
             files=len(files), seconds=round(time.monotonic() - started, 3))
    return ModelEntry(workspace=client.workspace, name=name, version=version.version,
                      registryModelItemId=version.registry_model_item_id,
                      status=version.status, experimentKey=version.experiment_key, files=files)
