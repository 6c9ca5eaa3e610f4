"""Status changes with review: who may change a status, what becomes a request, and the history.

INFERRED (Comet documents the events, not the rule): a version whose status configuration says
`isReviewRequired` for status S is reviewed for S only. A member key asking for S records a
pending request (MODEL_VERSION_STATUS_REQUEST_CHANGE) and the status stays; the owner key
setting S approves it (MODEL_VERSION_STATUS_REQUEST_APPROVED, then
MODEL_VERSION_STATUS_CHANGED). Any other change is applied at once; an owner's change to another
status drops the pending request, a member's keeps it.
"""

from __future__ import annotations

from enum import Enum

from .store import Store, check_status, now_ms

CHANGED = "MODEL_VERSION_STATUS_CHANGED"
REQUESTED = "MODEL_VERSION_STATUS_REQUEST_CHANGE"
APPROVED = "MODEL_VERSION_STATUS_REQUEST_APPROVED"


class Role(Enum):
    """What a key may do: an owner changes statuses; a member may have to ask."""

    OWNER = "owner"
    MEMBER = "member"


def event(action: str, user: str, new: dict, previous: dict, comment: str | None = "") -> dict:
    """One history event as the store keeps it (`at` in epoch ms)."""
    return {"actionType": action, "at": now_ms(), "userName": user, "newValue": new,
            "previousValue": previous, "comment": comment}


def needs_review(version: dict, status: str) -> bool:
    """True when the version's status configuration reviews a change to this status."""
    config = version.get("statusConfiguration") or {}
    return bool(config.get("isReviewRequired")) and config.get("status") == status


def change_status(store: Store, item_id: str, status: str, role: Role, user: str) -> dict:
    """Apply (or, for a member under review, request) a status change; the version after it."""
    check_status(status)

    def change(_model: dict, version: dict) -> None:
        before = {"registryModelStatus": version["status"], "changedBy": user}
        wanted = {"registryModelStatus": status, "changedBy": user}
        history = version.setdefault("history", [])
        if role is Role.MEMBER and needs_review(version, status) and version["status"] != status:
            version["pendingStatus"] = {"status": status, "requestedBy": user, "at": now_ms()}
            history.append(event(REQUESTED, user, {"registryModelStatus": status},
                                 {"registryModelStatus": version["status"]}))
            return
        pending = version.get("pendingStatus")
        if role is Role.OWNER and pending:
            if pending["status"] == status:
                history.append(event(APPROVED, pending["requestedBy"], wanted, before))
            version["pendingStatus"] = None
        if version["status"] != status:
            history.append(event(CHANGED, user, wanted, before))
        version["status"] = status

    return store.apply(item_id, change)
