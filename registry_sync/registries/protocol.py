"""The Registry protocol: what the sync core needs of a model registry, and nothing more.

The sync pass, the follower, the challenger and the installer depend on this seam, never on a
registry's client: they find the version a status names, list a model's versions, and fetch a
version's files (per asset when the registry gives a plan, else as one zip). Comet implements
it in registries/comet/registry.py; tests pass fakes at the client's boundary.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from model_contract.manifest import FileEntry

from .values import ModelVersion

if TYPE_CHECKING:
    from ..config import ArchiveLimits

Progress = Callable[[int, int | None], None]  # (bytes received, bytes expected or None)


@dataclass(frozen=True)
class Found:
    """The version to serve for one status (None: no version has it), and the others with it."""

    version: ModelVersion | None
    others: tuple[str, ...] = ()


class DownloadPlan(Protocol):
    """A version's files as the registry will send them, checked before any byte arrives."""

    @property
    def total_size(self) -> int:
        """Bytes of every file together."""
        ...


class Registry(Protocol):
    """One workspace of a model registry, as the sync core reads it."""

    @property
    def workspace(self) -> str:
        """The workspace the versions belong to (written in each manifest entry)."""
        ...

    def begin_poll(self) -> None:
        """Once per pass, before any find: refresh what is cached when due."""
        ...

    def expire(self) -> None:
        """Read everything again at the next poll (the registry said it changed)."""
        ...

    def find(self, name: str, status: str, tag: str = "") -> Found:
        """The version of a model that a status (else a tag) names."""
        ...

    def versions(self, name: str) -> Sequence[ModelVersion]:
        """Every version of a model, with the facts a follower checks a decision against."""
        ...

    def plan(self, name: str, version: ModelVersion, limits: ArchiveLimits) -> DownloadPlan:
        """The version's per-asset plan; raises InstructionsMissing when only a zip exists."""
        ...

    def fetch(self, plan: DownloadPlan, work: Path, target: Path,
              progress: Progress) -> tuple[FileEntry, ...]:
        """Download a plan's files into target (parts under work), verified."""
        ...

    def download_zip(self, name: str, version: ModelVersion, dest: Path,
                     progress: Progress) -> None:
        """The whole version as one zip at dest, bounded by the version's size."""
        ...

    def mark(self, name: str, version: str, item_id: str, tag: str,
             metadata: dict[str, str]) -> None:
        """Tag a version and add metadata to it (why the promotion guard rolled it back)."""
        ...
