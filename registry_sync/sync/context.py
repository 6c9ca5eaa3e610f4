"""The SyncContext: what the follower and the challenger may use of the pass that owns the state.

Syncer is the one owner of the sync state's memory; the follower and the candidate path act on it
only through this interface (read the state and the metrics, install a version, refuse a set,
bring MODEL_ROOT to a set), never through the syncer's private methods.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from model_contract.manifest import ModelEntry

if TYPE_CHECKING:
    from ..cluster.decision_refusals import HandedRefusal
    from ..config import SyncConfig
    from ..errors import UnsafeValue
    from ..hooks.notifier import ServingNotifier
    from ..ops.metrics import SyncMetrics
    from ..registries.protocol import Registry
    from ..registries.values import ModelVersion
    from ..store.state import RefusedBy, SyncState

Chosen = list[tuple[str, "ModelVersion"]]  # (model name, version) in configured order
Install = Callable[[str, "ModelVersion", Path, Path], ModelEntry]  # name, version, work, target


@dataclass(frozen=True)
class Outcome:
    """What a pass did: published, unchanged, waiting or rejected, and why."""

    kind: str
    detail: str = ""
    snapshot_id: str | None = None


class SyncContext(Protocol):
    """The owner of the sync state, as the follower and the challenger see it."""

    @property
    def config(self) -> SyncConfig:
        """The sidecar's configuration."""
        ...

    @property
    def root(self) -> Path:
        """MODEL_ROOT."""
        ...

    @property
    def state(self) -> SyncState:
        """The state (desired, waiting, candidate) the status reports; memory is the owner's."""
        ...

    @property
    def metrics(self) -> SyncMetrics:
        """The sidecar's metrics."""
        ...

    @property
    def registry(self) -> Registry:
        """The registry versions are found in and downloaded from."""
        ...

    @property
    def notifier(self) -> ServingNotifier | None:
        """Serving's handover, None when the sidecar publishes without validation."""
        ...

    def still_going(self) -> bool:
        """Polled at every step of progress: moves the heartbeat; True when asked to stop."""
        ...

    def progress(self) -> None:
        """Move the heartbeat (a long step that cannot poll still_going)."""
        ...

    def publishing_allowed(self) -> bool:
        """False once a leader is deposed: the next leader decides."""
        ...

    def install(self, name: str, version: ModelVersion, work: Path, target: Path) -> ModelEntry:
        """Download one version from the registry into target (parts under work)."""
        ...

    def refuse(self, key: str, shown: dict[str, str], reason: str, snapshot_id: str | None,
               by: RefusedBy) -> Outcome:
        """Remember durably that this version set must not be tried again."""
        ...

    def adopt_refusals(self, handed: tuple[HandedRefusal, ...]) -> None:
        """Record the leader's guard refusals this pod lacks (it may lead next)."""
        ...

    def refuse_unsafe(self, exc: UnsafeValue) -> Outcome:
        """A chosen version carries a value that must not go further: refused once, named."""
        ...

    def confirm_published(self) -> None:
        """Have serving check a snapshot published while it was down; roll back if refused."""
        ...

    def bring_to(self, chosen: Chosen, install: Install) -> Outcome:
        """Publish exactly the chosen versions unless published or refused."""
        ...
