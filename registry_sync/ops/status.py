"""The status report: what is desired, installed, published, and the last error."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from model_contract import layout

from ..store import snapshot
from ..store.state import SyncState


def report(root: Path, current: SyncState) -> dict[str, Any]:
    """The status as JSON-ready data, from the state and what is on disk."""
    published = snapshot.read_current(root)
    return {
        "modelRoot": str(root),
        "desired": {n: v["version"] for n, v in current.desired.items()},
        "alsoWithStatus": {n: v["alsoWithStatus"] for n, v in current.desired.items()
                           if v.get("alsoWithStatus")},
        "published": ({"snapshot": published.snapshotId, "versions": published.versions,
                       "createdAt": published.createdAt} if published else None),
        "installed": [m.snapshotId for m in snapshot.installed_manifests(root)],
        "waiting": current.waiting,
        "rejected": current.rejected,
        "lastValidated": current.memory.last_validated,
        "lastError": current.last_error,
        "lastSuccessAt": current.last_success_at,
        "lastAttemptAt": current.last_attempt_at,
        "consecutiveFailures": current.consecutive_failures,
        "ready": published is not None,
        "currentLink": layout.current_snapshot_id(root),
        "candidate": _candidate(root, current),
    }


def _candidate(root: Path, current: SyncState) -> dict[str, Any] | None:
    """The challenger: what `candidate` names, and what the last pass did about it."""
    known = current.candidate
    link = layout.candidate_snapshot_id(root)
    if known is None and link is None:
        return None
    return {"link": link, "outcome": known.outcome if known else None,
            "detail": known.detail if known else "",
            "versions": dict(known.versions) if known else {}}


def _when(timestamp: float | None) -> str:
    if not timestamp:
        return "never"
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(timestamp))


def render(status: dict[str, Any]) -> str:
    """The status as lines for people."""
    published = status["published"]
    lines = [
        f"MODEL_ROOT   {status['modelRoot']}",
        "desired      " + (_versions(status["desired"]) or "(unknown: no poll yet)"),
        "published    " + (f"{published['snapshot']}  {_versions(published['versions'])}"
                           if published else "(nothing yet)"),
        f"installed    {', '.join(status['installed']) or '(none)'}",
        *(f"also         {name} {others} carry the status too (not served: the most recently "
          "promoted is)" for name, others in status.get("alsoWithStatus", {}).items()),
        f"last success {_when(status['lastSuccessAt'])}",
    ]
    candidate = status.get("candidate")
    if candidate:
        lines.append(f"candidate    {candidate['link'] or '(none)'}  "
                     f"{_versions(candidate['versions'])} {candidate['detail']}".rstrip())
    if status["waiting"]:
        lines.append(f"waiting      {status['waiting']}")
    for rejection in status["rejected"][-3:]:
        kind = "rolled back " if rejection.get("by") == "guard" else "rejected    "
        lines.append(f"{kind} {_versions(rejection['versions'])}: {rejection['reason']}")
    pending = status.get("pendingRequests")
    if isinstance(pending, str):
        lines.append(f"pending      {pending}")
    for request in pending if isinstance(pending, list) else ():
        lines.append(f"pending      {request['model']} {request['version']} to "
                     f"{request['status']}, requested by {request['requested_by'] or '?'}: "
                     "awaiting an owner's approval (not followed until then)")
    if status["lastError"]:
        error = status["lastError"]
        lines.append(f"last error   {error['type']}: {error['message']} "
                     f"({status['consecutiveFailures']} in a row, {_when(error['at'])})")
    return "\n".join(lines)


def _versions(versions: dict[str, str]) -> str:
    return ", ".join(f"{name} {version}" for name, version in versions.items())
