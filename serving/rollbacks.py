"""The last rollback by the sidecar's promotion guard, as /api/v1/model shows it.

The sidecar records it in MODEL_ROOT's state file (registry_sync.store.state: a refusal `by`
"guard"); serving only reads that file, at most MAX_STATE_BYTES of it, again only when it changed.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from model_contract import layout

MAX_STATE_BYTES = 1024 * 1024
_cache: dict[Path, tuple[tuple[int, int], dict[str, Any] | None]] = {}


def last(model_root: Path) -> dict[str, Any] | None:
    """The guard's latest rollback (versions, reason, snapshot, at), or None."""
    path = model_root / layout.STATE
    try:
        stat = path.stat()
    except OSError:
        return None
    stamp = (stat.st_mtime_ns, stat.st_size)
    cached = _cache.get(path)
    if cached is not None and cached[0] == stamp:
        return cached[1]
    found = _read(path) if stat.st_size <= MAX_STATE_BYTES else None
    _cache[path] = (stamp, found)
    return found


def _read(path: Path) -> dict[str, Any] | None:
    try:
        refusals = json.loads(path.read_text(encoding="utf-8"))["memory"]["refusals"]
        mine = [r for r in refusals if isinstance(r, dict) and r.get("by") == "guard"]
    except (OSError, ValueError, KeyError, TypeError):
        return None  # being replaced, or not the sidecar's: nothing to say
    if not mine:
        return None
    latest = mine[-1]
    at = latest.get("at")
    return {"snapshot": latest.get("snapshot"), "versions": latest.get("versions"),
            "reason": str(latest.get("reason", ""))[:1000],
            "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(at))
            if isinstance(at, (int, float)) else None}
