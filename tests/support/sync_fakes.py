"""Fakes of the registry and of serving for unit tests of the sync core, and a syncer to drive.

    world = SyncWorld(tmp_path)          # one model "clf", KEEP_SNAPSHOTS=2, serving up
    world.registry.promote("1.0.1")      # a new Production version (bad=True: serving refuses it)
    outcome = world.sync()               # one pass through the real Daemon.run_once

FakeRegistry leaves out HTTP, retries, deadlines and the per-asset download (tests/integration
covers the real client): it answers the finder's reads (items?status=, item/details, the allowed
statuses) and writes a small real zip on download.
FakeServing leaves out HTTP and the validator process (the notifier is tested over HTTP on its
own): it answers like the notifier, checking that the snapshot verifies and that its version is
not one it was told is bad.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path

from devkit.registry import zip_bytes
from model_contract import layout
from registry_sync import config
from registry_sync.errors import (
    CometUnavailable,
    InstructionsMissing,
    ServingUnavailable,
    SnapshotRejected,
)
from registry_sync.hooks.notifier import Verdict
from registry_sync.ops.metrics import SyncMetrics
from registry_sync.registries.comet.registry import CometRegistry
from registry_sync.registries.values import ModelVersion
from registry_sync.store import snapshot, state
from registry_sync.sync.daemon import Daemon
from registry_sync.sync.syncer import Outcome, Syncer

MODEL = "clf"


@dataclass
class FakeRegistry:
    """The production version of one registry model, and faults to answer with."""

    versions: list[ModelVersion] = field(default_factory=list)
    production: str | None = None
    unsafe: set[str] = field(default_factory=set)
    down: bool = False
    downloads: list[str] = field(default_factory=list)
    workspace: str = "ws"

    def promote(self, version: str, unsafe: bool = False) -> str:
        """Register a version and make it the production one."""
        self.versions.append(ModelVersion(version, f"item-{version}", "Production", (), (),
                                          "exp", len(self.versions) + 1, "", ()))
        if unsafe:
            self.unsafe.add(version)
        self.production = version
        return version

    def allowed_statuses(self) -> tuple[str, ...]:
        """The default four."""
        return ("None", "Development", "Staging", "Production")

    def find_versions(self, name: str, *, status: str | None = None,
                      tag: str | None = None) -> list[str]:
        """The production version when asked for Production, else nothing."""
        if self.down:
            raise CometUnavailable("registry down (fake)")
        return [self.production] if status == "Production" and self.production else []

    def version_details(self, name: str, version: str) -> ModelVersion:
        """One version's facts."""
        return next(v for v in self.versions if v.version == version)

    def download_instructions(self, name: str, version: str) -> dict:
        """None here: the installer takes the whole-version zip path."""
        raise InstructionsMissing("no download-instructions (fake)")

    def download(self, name: str, version: str, dest: Path, progress=None, **_: object) -> int:
        """A small real zip (or an unsafe one) written to dest."""
        if self.down:
            raise CometUnavailable("registry down (fake)")
        self.downloads.append(version)
        files = {"../evil": b"x"} if version in self.unsafe else {"weights.bin": version.encode()}
        data = zip_bytes(files)
        dest.write_bytes(data)
        if progress:
            progress(len(data), len(data))
        return len(data)


@dataclass
class FakeServing:
    """Serving's verdicts: mode up / down (nothing listens) / crash (dropped) / slow (deadline)."""

    root: Path
    mode: str = "up"
    bad: set[str] = field(default_factory=set)
    refused: set[str] = field(default_factory=set)  # versions it answered 422 for
    accepted: set[str] = field(default_factory=set)  # snapshot ids it answered 200 for
    unasked: set[str] = field(default_factory=set)  # snapshot ids asked while nothing listened

    def validate(self, snapshot_id: str) -> Verdict:
        """Like ServingNotifier.validate."""
        if self.mode == "down":
            self.unasked.add(snapshot_id)
            return Verdict.NOT_UP
        if self.mode in ("crash", "slow"):
            raise ServingUnavailable(f"serving {self.mode} while validating (fake)")
        why = snapshot.damage(self.root, snapshot_id)
        version = snapshot.installed_manifests(self.root)
        found = next((m for m in version if m.snapshotId == snapshot_id), None)
        served = found.versions.get(MODEL) if found else None
        if why or served in self.bad:
            self.refused.add(served)
            raise SnapshotRejected(snapshot_id, why or f"golden predictions failed for {served}")
        self.accepted.add(snapshot_id)
        return Verdict.ACCEPTED

    def reload(self, snapshot_id: str) -> str:
        """Like ServingNotifier.reload."""
        if self.mode != "up":
            raise ServingUnavailable("serving not reachable (fake)")
        return "swapped"


def sync_config(root: Path, **extra: str) -> config.SyncConfig:
    """A sync configuration for one model in root."""
    env = {"MODEL_ROOT": str(root), "REGISTRY_MODELS": MODEL, "COMET_WORKSPACE": "ws",
           "COMET_API_KEY": "k", "KEEP_SNAPSHOTS": "2", "SERVING_URL": "http://127.0.0.1:1",
           "RELOAD_TOKEN": "t0ken", **extra}
    return config.sync_config(argparse.Namespace(), env)


class SyncWorld:
    """A MODEL_ROOT, the fakes, and a daemon rebuilt from disk at each restart."""

    def __init__(self, root: Path, keep: int = 2):
        self.root, self.keep = root, keep
        self.registry = FakeRegistry()
        self.serving = FakeServing(root)
        self.restart()

    def restart(self) -> None:
        """A new process: state read from disk, .staging cleaned."""
        self.config = sync_config(self.root, KEEP_SNAPSHOTS=str(self.keep))
        self.root.mkdir(parents=True, exist_ok=True)
        snapshot.clean_staging(self.root)
        statuses = (self.config.status, self.config.candidate_status)
        self.syncer = Syncer(self.config, CometRegistry(self.registry, statuses),
                             state.load(self.root), SyncMetrics(),
                             self.serving)
        self.daemon = Daemon(self.syncer, wait=lambda _seconds: None)

    def sync(self) -> Outcome | None:
        """One pass of the real loop's bookkeeping; None if it failed."""
        return self.daemon.run_once()

    def current_version(self) -> str | None:
        """The version `current` holds, or None."""
        found = snapshot.read_current(self.root)
        return found.versions.get(MODEL) if found else None

    def snapshot_folders(self) -> list[str]:
        """The folders under snapshots/."""
        folder = layout.snapshots_dir(self.root)
        return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []
