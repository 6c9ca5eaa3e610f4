"""Promotions that need approval: reading a version's history for a pending status request.

In a workspace with review, a member's status change becomes a request
(MODEL_VERSION_STATUS_REQUEST_CHANGE) that an owner approves (..._REQUEST_APPROVED, then
MODEL_VERSION_STATUS_CHANGED). A version has a pending request when the newest of those events
is a request. The sidecar never follows a request, only the actual status; this is for
`promote` and `status` to say what is waiting.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ...errors import VersionNotFound
from .client import CometClient

REQUESTED = "MODEL_VERSION_STATUS_REQUEST_CHANGE"
SETTLED = ("MODEL_VERSION_STATUS_REQUEST_APPROVED", "MODEL_VERSION_STATUS_CHANGED")
NEWEST_VERSIONS_CHECKED = 5  # one history request each: keep `status` cheap on the rate limit


@dataclass(frozen=True)
class PendingRequest:
    """A status change asked for and not yet approved."""

    model: str
    version: str
    status: str
    requested_by: str


def pending_status(events: Iterable[Mapping[str, Any]]) -> tuple[str, str] | None:
    """(requested status, by whom) when the newest status event is a request, else None."""
    relevant = [e for e in events if e.get("actionType") in (REQUESTED, *SETTLED)]
    if not relevant:
        return None
    if all(isinstance(e.get("createdAt"), int) for e in relevant):
        # at equal times the settling event wins: an approval is recorded after its request
        newest = max(relevant, key=lambda e: (e["createdAt"], e.get("actionType") != REQUESTED))
    else:
        newest = relevant[0]  # Comet lists the newest day first, and newest first in a day
    if newest.get("actionType") != REQUESTED:
        return None
    wanted = (newest.get("newValue") or {}).get("registryModelStatus")
    return (str(wanted), str(newest.get("userName") or "")) if wanted else None


def pending_for_version(client: CometClient, name: str, version: str) -> PendingRequest | None:
    """The pending status request of one version, if its history shows one.

    The version's status is read from item/details, where the SDK reads it.
    """
    try:
        found = client.version_details(name, version)
    except VersionNotFound:
        return None
    pending = pending_status(client.version_history(found.registry_model_item_id))
    if pending is None or pending[0] == found.status:
        return None
    return PendingRequest(name, version, pending[0], pending[1])


def pending_requests(client: CometClient, names: Iterable[str]) -> list[PendingRequest]:
    """Pending requests among the newest versions of each followed model."""
    found = []
    for name in names:
        model = client.get_model(name)
        newest = sorted(model.versions, key=lambda v: v.created_at, reverse=True)
        for version in newest[:NEWEST_VERSIONS_CHECKED]:
            pending = pending_for_version(client, name, version.version)
            if pending is not None:
                found.append(pending)
    return found
