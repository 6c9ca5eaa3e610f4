"""Publishing: point `current` at a snapshot with one rename(2), and prune old snapshots."""

from __future__ import annotations

import os
from collections.abc import Collection
from pathlib import Path

from model_contract import layout, logs
from model_contract.manifest import fsync_dir

from . import snapshot
from .state import manifest_key

log = logs.get(__name__)


def publish(root: Path, snapshot_id: str, link: str = layout.CURRENT) -> None:
    """Atomically point MODEL_ROOT/current (or `candidate`) at snapshots/<snapshot_id>."""
    target = layout.snapshot_path(root, snapshot_id)
    if not target.is_dir():
        raise FileNotFoundError(f"snapshot {snapshot_id} does not exist")
    temp = root / f".{link}.{os.getpid()}.tmp"
    if temp.is_symlink() or temp.exists():
        temp.unlink()
    os.symlink(os.path.join(layout.SNAPSHOTS, snapshot_id), temp)
    os.replace(temp, root / link)
    fsync_dir(root)


def withdraw(root: Path, link: str = layout.CURRENT) -> None:
    """Remove `current` (serving refused it, no validated snapshot is left) or `candidate`."""
    try:
        os.unlink(root / link)
    except FileNotFoundError:
        return
    fsync_dir(root)


def prune(root: Path, keep: int, protect: Collection[str] = frozenset(),
          refused: Collection[str] = frozenset()) -> list[str]:
    """Leave at most `keep` snapshots besides the protected ones; return what went.

    `current`, `candidate` and `protect` (the last validated snapshot) always stay. Damaged
    folders, refused version sets and second copies of a version set go first; then the oldest
    (ids sort by time).
    """
    kept_ids = {layout.current_snapshot_id(root), layout.candidate_snapshot_id(root), *protect}
    trusted = snapshot.trusted_manifests(root)  # discards damaged folders
    kept, removed, seen = [], [], set()
    for found in sorted(trusted, key=lambda m: m.snapshotId not in kept_ids):
        key = manifest_key(found)
        protected = found.snapshotId in kept_ids
        if protected or (key not in refused and key not in seen):
            kept.append(found.snapshotId)
            seen.add(key)
        else:
            removed.append(found.snapshotId)
    surplus = [s for s in sorted(kept, reverse=True) if s not in kept_ids]
    budget = max(0, keep - len(kept_ids & set(kept)))
    removed += surplus[budget:]
    for snapshot_id in removed:
        snapshot.discard(root, snapshot_id)
    return sorted(removed)
