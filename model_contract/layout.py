"""The MODEL_ROOT layout shared by the sidecar and serving: names, and how to find `current`.

MODEL_ROOT/
  current -> snapshots/<snapshot-id>     relative symlink, replaced only by rename(2)
  candidate -> snapshots/<snapshot-id>   the challenger (candidate status); absent when none
  snapshots/<snapshot-id>/manifest.json  written last
  snapshots/<snapshot-id>/<registry-model-name>/<files as unzipped>
  .staging/                              work in progress, never read by serving
  .sync-state.json                       the sidecar's own status and memory (rejections)
  .guard-watch.json                      the promotion guard's open window (standalone sidecar)
"""

from __future__ import annotations

import os
from pathlib import Path

CURRENT = "current"
CANDIDATE = "candidate"
SNAPSHOTS = "snapshots"
STAGING = ".staging"
STATE = ".sync-state.json"
GUARD_WATCH = ".guard-watch.json"
NAME_MAX = 255  # bytes in one file name, on Linux file systems


def snapshots_dir(root: Path) -> Path:
    """Where complete snapshots live."""
    return root / SNAPSHOTS


def staging_dir(root: Path) -> Path:
    """Where downloads and unzips happen before they become a snapshot."""
    return root / STAGING


def current_snapshot_id(root: Path) -> str | None:
    """The id of the published snapshot (basename of readlink(current)), or None."""
    return linked_snapshot_id(root, CURRENT)


def candidate_snapshot_id(root: Path) -> str | None:
    """The id of the challenger's snapshot (basename of readlink(candidate)), or None."""
    return linked_snapshot_id(root, CANDIDATE)


def linked_snapshot_id(root: Path, link: str) -> str | None:
    """The snapshot id a symlink of MODEL_ROOT names, or None when it is absent."""
    try:
        return os.path.basename(os.readlink(root / link))
    except (FileNotFoundError, OSError):
        return None


def snapshot_path(root: Path, snapshot_id: str) -> Path:
    """The folder of one snapshot; refuses ids that would leave snapshots/ or cannot be names.

    (A NUL, or a name over the 255 bytes a file name may have, would make the file system
    calls that follow raise instead of answering "no such snapshot".)
    """
    if not snapshot_id or "/" in snapshot_id or snapshot_id.startswith(".") or \
            "\x00" in snapshot_id or len(snapshot_id.encode("utf-8", "surrogatepass")) > NAME_MAX:
        raise ValueError(f"invalid snapshot id {snapshot_id[:80]!r}")
    return snapshots_dir(root) / snapshot_id
