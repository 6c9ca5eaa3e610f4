"""Publishing: point `current` at a snapshot with one rename(2), and prune old snapshots."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from model_contract import layout
from model_contract.manifest import fsync_dir


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


def prune(root: Path, keep: int, protect: set[str] = frozenset()) -> list[str]:
    """Delete all but the newest `keep` snapshots, never the current one; return what went."""
    current = layout.current_snapshot_id(root)
    snapshots = sorted(
        (p for p in layout.snapshots_dir(root).glob("*") if p.is_dir()),
        key=lambda p: p.stat().st_mtime, reverse=True,
    )
    kept = {p.name for p in snapshots[:keep]} | {current} | set(protect)
    removed = []
    for path in snapshots:
        if path.name not in kept:
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path.name)
    return removed
