"""Reading the JSON-lines logs our processes write: events and their timestamps."""

from __future__ import annotations

import contextlib
import json
from datetime import datetime
from pathlib import Path
from typing import Any


def json_lines(path: Path, event: str | None = None) -> list[dict[str, Any]]:
    """The JSON log lines of a file (none if it does not exist), optionally only one event."""
    found: list[dict[str, Any]] = []
    if not path.exists():
        return found
    for line in path.read_text(errors="replace").splitlines():
        with contextlib.suppress(ValueError):
            entry = json.loads(line)
            if isinstance(entry, dict) and (event is None or entry.get("event") == event):
                found.append(entry)
    return found


def event_time(entry: dict[str, Any]) -> float:
    """The epoch seconds of a log line's `ts` (millisecond resolution)."""
    return datetime.strptime(entry["ts"], "%Y-%m-%dT%H:%M:%S.%f%z").timestamp()
