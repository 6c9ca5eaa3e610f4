"""The sidecar's memory and status, kept in MODEL_ROOT/.sync-state.json across restarts.

It remembers which version sets were rejected (by serving, or as unsafe archives) so that they
are not tried again until the registry's production versions change, and it is what
`registry-sync status` and `/status` show.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from model_contract import layout

VersionSet = dict[str, dict[str, str]]  # model name -> {"version", "registryModelItemId", ...}


def version_set_key(versions: VersionSet) -> str:
    """A stable text key of a version set: names, versions and registry item ids."""
    return json.dumps({n: [v["version"], v["registryModelItemId"]] for n, v in versions.items()},
                      sort_keys=True)


@dataclass
class SyncState:
    """What the daemon wants, has, and has learned."""

    desired: VersionSet = field(default_factory=dict)
    waiting: str | None = None
    published: dict[str, Any] | None = None
    rejected: dict[str, dict[str, Any]] = field(default_factory=dict)
    last_error: dict[str, Any] | None = None
    last_success_at: float | None = None
    last_attempt_at: float | None = None
    consecutive_failures: int = 0

    def is_rejected(self, versions: VersionSet) -> dict[str, Any] | None:
        """The recorded rejection of this exact version set, if any."""
        return self.rejected.get(version_set_key(versions))

    def reject(self, versions: VersionSet, reason: str, snapshot_id: str | None) -> None:
        """Remember that this version set must not be tried again."""
        self.rejected[version_set_key(versions)] = {
            "versions": {n: v["version"] for n, v in versions.items()},
            "reason": reason, "snapshot": snapshot_id, "at": time.time(),
        }
        # only the most recent rejections matter; old ones cannot come back as production
        for key in list(self.rejected)[:-20]:
            del self.rejected[key]

    def to_dict(self) -> dict[str, Any]:
        """The state as plain JSON-ready data."""
        return asdict(self)


def load(root: Path) -> SyncState:
    """The saved state, or a fresh one if there is none or it cannot be read."""
    try:
        raw = json.loads((root / layout.STATE).read_text(encoding="utf-8"))
        return SyncState(**{k: v for k, v in raw.items() if k in SyncState.__dataclass_fields__})
    except (OSError, ValueError, TypeError):
        return SyncState()


def save(root: Path, state: SyncState) -> None:
    """Write the state atomically (temp file + rename)."""
    temp = root / (layout.STATE + ".tmp")
    temp.write_text(json.dumps(state.to_dict(), indent=2, sort_keys=True), encoding="utf-8")
    os.replace(temp, root / layout.STATE)
