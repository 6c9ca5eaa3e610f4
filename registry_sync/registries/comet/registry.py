"""Comet as the sync core's Registry: its client, its version finder and its per-asset download."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

from model_contract.manifest import FileEntry

from ...config import ArchiveLimits
from ..protocol import DownloadPlan, Found, Progress
from ..values import ModelVersion
from . import asset_download
from .client import CometClient
from .finder import VersionFinder


class CometRegistry:
    """The Registry protocol over one Comet workspace (docs/comet-api.md)."""

    def __init__(self, client: CometClient, statuses: Iterable[str] = ()):
        self.client = client
        self.finder = VersionFinder(client, statuses)

    @property
    def workspace(self) -> str:
        """The configured workspace."""
        return self.client.workspace

    def begin_poll(self) -> None:
        """Refresh the finder's caches when due."""
        self.finder.begin_poll()

    def expire(self) -> None:
        """Read everything again at the next poll (a webhook said the registry changed)."""
        self.finder.expire()

    def find(self, name: str, status: str, tag: str = "") -> Found:
        """As the comet_ml SDK finds a version (docs/comet-api.md §4)."""
        return self.finder.find(name, status, tag)

    def versions(self, name: str) -> Sequence[ModelVersion]:
        """The model's versions, from its details."""
        return self.client.get_model(name).versions

    def plan(self, name: str, version: ModelVersion, limits: ArchiveLimits) -> DownloadPlan:
        """The download-instructions, checked against the version's details."""
        return asset_download.plan(self.client, name, version, limits)

    def fetch(self, plan: DownloadPlan, work: Path, target: Path,
              progress: Progress) -> tuple[FileEntry, ...]:
        """Each asset, side by side, as comet_ml's Model.download does."""
        assert isinstance(plan, asset_download.Plan), "a plan this registry made"
        return asset_download.fetch(self.client, plan, work, target, progress)

    def download_zip(self, name: str, version: ModelVersion, dest: Path,
                     progress: Progress) -> None:
        """The legacy whole-version zip."""
        self.client.download(name, version.version, dest, progress,
                             expected_size=version.total_size)

    def mark(self, name: str, version: str, item_id: str, tag: str,
             metadata: dict[str, str]) -> None:
        """A tag (the old "stage") and key/value metadata on the version, as the UI writes them."""
        self.client.add_tag(name, version, tag)
        self.client.set_metadata(item_id, metadata)
