"""Comet MPM's ingestion endpoints as the comet_mpm 1.5 SDK calls them, and counts to read back.

    GET  /mpm/isAlive/ping        200 {"status": "ok"}; no key needed (the SDK's ping)
    POST /mpm/v2/events/batch     {"data": [{"workspaceName", "modelName", "modelVersion",
                                  "predictionId", "timestamp", "features"?, "prediction"?,
                                  "labels"?}]}
    POST /mpm/v2/labels/batch     {"data": [{... "predictionId", "labels"}]}
    GET  /mpm/local/counts        ours: events and labels per model version; no key needed
                                  (numbers only), so the demo can link it
    GET  /mpm/local/events        ours: the latest events and labels as received (?limit=N)

INFERRED (Comet does not document them): the batch answers ({"accepted": n}); a malformed
event refuses the whole batch with 400 naming it; a prediction id already received for the same
model version is not counted again (Comet drops duplicates; the SDK retries on timeouts). Data
lives in memory only, the latest 1,000 items kept.
"""

from __future__ import annotations

import hmac
import threading
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

from flask import Blueprint, Response, current_app, request

from .web import ApiError, json_body, json_response, state

bp = Blueprint("mpm", __name__, url_prefix="/mpm")
KEPT = 1000
REQUIRED = ("workspaceName", "modelName", "modelVersion", "predictionId")
EXTENSION = "local_registry.mpm"


@dataclass
class MpmLog:
    """What MPM received: counts per (workspace, model, version), and the latest items."""

    events: Counter = field(default_factory=Counter)
    labels: Counter = field(default_factory=Counter)
    joined: Counter = field(default_factory=Counter)
    seen: set = field(default_factory=set)
    latest: deque = field(default_factory=lambda: deque(maxlen=KEPT))
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, kind: str, items: list[dict[str, Any]]) -> int:
        """Record a checked batch of events or labels; the number newly counted."""
        added = 0
        with self.lock:
            for item in items:
                key = (item["workspaceName"], item["modelName"], item["modelVersion"])
                seen = (kind, *key, item["predictionId"])
                self.latest.append({"kind": kind, **item})
                if seen in self.seen:
                    continue
                self.seen.add(seen)
                added += 1
                (self.events if kind == "event" else self.labels)[key] += 1
                if kind == "label" and ("event", *key, item["predictionId"]) in self.seen:
                    self.joined[key] += 1
        return added

    def counts(self) -> dict[str, Any]:
        """Counts per model version, and totals."""
        with self.lock:
            keys = sorted(set(self.events) | set(self.labels))
            models = [{"workspaceName": w, "modelName": m, "modelVersion": v,
                       "events": self.events[(w, m, v)], "labels": self.labels[(w, m, v)],
                       "labelsJoined": self.joined[(w, m, v)]} for w, m, v in keys]
            return {"models": models, "events": sum(self.events.values()),
                    "labels": sum(self.labels.values())}


def mpm_log() -> MpmLog:
    """The MPM data of the current app (created on first use)."""
    return current_app.extensions.setdefault(EXTENSION, MpmLog())


@bp.before_request
def _authenticate() -> None:
    if request.path.endswith(("/isAlive/ping", "/local/counts")):
        return
    given = request.headers.get("Authorization") or ""
    if not hmac.compare_digest(given.encode(), state().api_key.encode()):
        raise ApiError(401, "Unauthorized: missing or invalid API key")


@bp.get("/isAlive/ping")
def ping() -> Response:
    """What the SDK checks before sending: any 200 (404 would disable MPM in the client)."""
    return json_response({"status": "ok"})


@bp.post("/v2/events/batch")
def events_batch() -> Response:
    """Prediction events."""
    return json_response({"accepted": mpm_log().add("event", _batch(("timestamp",)))})


@bp.post("/v2/labels/batch")
def labels_batch() -> Response:
    """Ground-truth labels for earlier predictions."""
    return json_response({"accepted": mpm_log().add("label", _batch(("labels",)))})


@bp.get("/local/counts")
def counts() -> Response:
    """Events and labels received, per model version."""
    return json_response(mpm_log().counts())


@bp.get("/local/events")
def latest() -> Response:
    """The latest events and labels as received, newest last."""
    try:
        limit = min(KEPT, max(1, int(request.args.get("limit", "100"))))
    except ValueError:
        raise ApiError(400, "limit must be a whole number") from None
    with mpm_log().lock:
        items = list(mpm_log().latest)[-limit:]
    return json_response({"items": items})


def _batch(extra: tuple[str, ...]) -> list[dict[str, Any]]:
    """The checked items of {"data": [...]}; ApiError 400 names the first bad one."""
    data = json_body().get("data")
    if not isinstance(data, list):
        raise ApiError(400, "The body must be {\"data\": [...]}")
    for i, item in enumerate(data):
        if not isinstance(item, dict):
            raise ApiError(400, f"data[{i}] must be an object")
        for name in REQUIRED + extra:
            value = item.get(name)
            if value is None or (name in REQUIRED and not isinstance(value, str)):
                raise ApiError(400, f"data[{i}].{name} is missing or not a string")
    return data
