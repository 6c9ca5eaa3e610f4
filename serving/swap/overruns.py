"""Model calls that overran PREDICT_TIMEOUT, remembered where every worker (and the master) sees.

A worker that stops an overrunning call, or the master that kills a worker whose call could not
be stopped, writes one file per role and snapshot in serving's private folder (VALIDATION_DIR,
never MODEL_ROOT): the record outlives the worker. The canary guard of every worker, old or
replacement, trips on a challenger's record; a champion's record is shown by /api/v1/model
(`overrun`) so an operator, or a guarded promotion, can act on it.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

FOLDER = "overruns"


@dataclass(frozen=True)
class Overrun:
    """The latest overrun of a role's snapshot: what happened and when."""

    role: str  # champion or challenger
    snapshot: str
    reason: str
    at: float
    worker_killed: bool = False  # the call could not be stopped: the master killed the worker

    def to_json(self) -> dict[str, object]:
        """As /api/v1/model shows it."""
        return {"role": self.role, "snapshot": self.snapshot, "reason": self.reason,
                "worker_killed": self.worker_killed,
                "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.at))}


def _path(folder: Path, role: str, snapshot: str) -> Path:
    return folder / FOLDER / f"{role}-{snapshot}.json"


def record(folder: Path, overrun: Overrun) -> None:
    """Write the record (replacing an earlier one), whole or not at all."""
    path = _path(folder, overrun.role, overrun.snapshot)
    path.parent.mkdir(mode=0o700, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}")
    temporary.write_text(json.dumps({"reason": overrun.reason, "at": overrun.at,
                                     "worker_killed": overrun.worker_killed}))
    os.replace(temporary, path)


def find(folder: Path, role: str, snapshot: str) -> Overrun | None:
    """The record of this role's snapshot, or None (none, or unreadable)."""
    with contextlib.suppress(OSError, ValueError, TypeError, KeyError):
        found = json.loads(_path(folder, role, snapshot).read_text())
        return Overrun(role, snapshot, str(found["reason"]), float(found["at"]),
                       bool(found.get("worker_killed")))
    return None
