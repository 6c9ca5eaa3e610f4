"""The promotion guard's open window, kept on disk so that a restarted sidecar resumes it.

Serving's counters outlive the sidecar (another process), so a window can go on where it was:
`watch()` writes the watched snapshot, the previous one, when the window began (wall clock) and
the two readings it is judged from to MODEL_ROOT/.guard-watch.json; a pass or a trip removes it.
At start a standalone sidecar resumes the window if that snapshot is still `current` and the
window has not ended. In a cluster it does not: a restarted leader has released the Lease, and
only the leader judges. The file is the sidecar's own; one it cannot read is ignored (logged).
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from model_contract import layout, logs
from model_contract.manifest import write_durably
from registry_sync.guard.figures import Figures

log = logs.get(__name__)
NAME = layout.GUARD_WATCH


@dataclass(frozen=True)
class OpenWindow:
    """A window as written: what is watched, since when (time.time()), and its readings."""

    snapshot: str
    previous: str | None
    key: str
    started_at: float
    start: Figures
    baseline: Figures


def _figures_json(found: Figures) -> dict[str, Any]:
    return {"ok": found.ok, "failed": found.failed, "buckets": [list(b) for b in found.buckets],
            "classes": dict(found.classes), "values": list(found.values)}


def _figures(raw: Mapping[str, Any]) -> Figures:
    return Figures(float(raw["ok"]), float(raw["failed"]),
                   tuple((float(le), float(n)) for le, n in raw["buckets"]),
                   {str(k): float(v) for k, v in raw["classes"].items()},
                   tuple(float(v) for v in raw["values"][:3]))  # type: ignore[arg-type]


def save(root: Path, window: OpenWindow) -> None:
    """Write the open window durably (a failure is logged: the window still runs in memory)."""
    text = json.dumps({"snapshot": window.snapshot, "previous": window.previous,
                       "key": window.key, "startedAt": window.started_at,
                       "start": _figures_json(window.start),
                       "baseline": _figures_json(window.baseline)})
    try:
        write_durably(root / NAME, text)
    except OSError as exc:
        log.warning("guard_window_not_kept", error=str(exc)[:200])


def clear(root: Path) -> None:
    """The window closed (passed or tripped): nothing to resume."""
    (root / NAME).unlink(missing_ok=True)


def load(root: Path, current: str | None, window: float) -> OpenWindow | None:
    """The window to resume: written for `current` and not over; else None (file removed)."""
    path = root / NAME
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        found = OpenWindow(str(raw["snapshot"]),
                           None if raw["previous"] is None else str(raw["previous"]),
                           str(raw["key"]), float(raw["startedAt"]), _figures(raw["start"]),
                           _figures(raw["baseline"]))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
        log.warning("guard_window_unreadable", error=f"{type(exc).__name__}: {exc}"[:200])
        clear(root)
        return None
    if found.snapshot != current or not 0 <= time.time() - found.started_at < window:
        clear(root)
        return None
    return found
