"""Sending webhooks on registry events, as Comet does (docs/comet-api.md §8).

Comet documents the configuration (per model: name, url, optional secret, triggers, headers) and
that a payload begins {"workspaceName", "registryModelName", "version", "stages", ...}. INFERRED
here, where Comet documents nothing: the trigger names (MODEL_VERSION_CREATED is documented; the
others follow the history's actionTypes), the rest of the payload (status, tags, item id, the
trigger, a timestamp), and the secret, sent as the `Authorization` header unless the configured
headers name one. No signature: Comet documents none.

Delivery: one background thread, a bounded queue (QUEUE_SIZE; beyond it an event is dropped and
logged), one POST per hook and event with a TIMEOUT for the whole delivery (connect, send, the
answer's head), never retried (a webhook only moves a poll earlier); a redirect is the answer,
never followed (it would carry the secret to another host). Logged with the URL's host only:
neither headers, secret nor query reach a log.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import queue
import socket
import threading
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from model_contract import logs

log = logs.get(__name__)

CREATED = "MODEL_VERSION_CREATED"
DELETED = "MODEL_VERSION_DELETED"
STATUS_CHANGED = "MODEL_VERSION_STATUS_CHANGED"
TAG_ADDED = "MODEL_VERSION_TAG_ADDED"
TAG_REMOVED = "MODEL_VERSION_TAG_REMOVED"
TRIGGERS = (CREATED, DELETED, STATUS_CHANGED, TAG_ADDED, TAG_REMOVED)
QUEUE_SIZE = 256
TIMEOUT = 3.0
MAX_HOOKS = 20
MAX_HEADERS = 20
MAX_TEXT = 2048


class InvalidHook(ValueError):
    """A webhook configuration that cannot be stored; the message names the field."""


def check_hooks(hooks: Any) -> list[dict[str, Any]]:
    """The hooks as stored, or InvalidHook naming the first field that is wrong."""
    if not isinstance(hooks, list) or len(hooks) > MAX_HOOKS:
        raise InvalidHook(f"webhookUrls must be a list of at most {MAX_HOOKS} objects")
    return [_check_hook(i, hook) for i, hook in enumerate(hooks)]


def _check_hook(index: int, hook: Any) -> dict[str, Any]:
    where = f"webhookUrls[{index}]"
    if not isinstance(hook, dict):
        raise InvalidHook(f"{where} must be an object")
    url = hook.get("url")
    if not isinstance(url, str) or urlsplit(url).scheme not in ("http", "https") \
            or not urlsplit(url).hostname or len(url) > MAX_TEXT:
        raise InvalidHook(f"{where}.url must be an http(s) URL")
    triggers = hook.get("triggers") or list(TRIGGERS)
    if not isinstance(triggers, list) or any(t not in TRIGGERS for t in triggers):
        raise InvalidHook(f"{where}.triggers must be a list of {', '.join(TRIGGERS)}")
    header = hook.get("header") or {}
    if not isinstance(header, dict) or len(header) > MAX_HEADERS or not all(
            _header_safe(k) and _header_safe(v) for k, v in header.items()):
        raise InvalidHook(f"{where}.header must map at most {MAX_HEADERS} header names to "
                          "values, printable, without line breaks")
    secret = hook.get("secret")
    if secret is not None and not _header_safe(secret):
        raise InvalidHook(f"{where}.secret must be printable text without line breaks")
    return {"name": str(hook.get("name") or "")[:200], "url": url, "triggers": triggers,
            "header": header, **({"secret": secret} if secret else {})}


def _header_safe(value: Any) -> bool:
    return (isinstance(value, str) and 0 < len(value) <= MAX_TEXT and value.isprintable()
            and "\r" not in value and "\n" not in value)


@dataclass(frozen=True)
class Delivery:
    """One POST to make."""

    url: str
    headers: dict[str, str]
    body: bytes
    trigger: str


def payload(trigger: str, workspace: str, model: dict, version: dict, stamp: int) -> dict:
    """The documented start of Comet's payload, then our INFERRED fields."""
    return {"workspaceName": workspace, "registryModelName": model["modelName"],
            "version": version["version"],
            "stages": list(dict.fromkeys(t.lower() for t in version.get("tags") or [])),
            "tags": list(version.get("tags") or []), "status": version.get("status"),
            "registryModelItemId": version["registryModelItemId"], "trigger": trigger,
            "timestamp": stamp}


def deliveries(trigger: str, body: dict, hooks: list[dict]) -> list[Delivery]:
    """What to send for an event to a model's hooks."""
    data = json.dumps(body).encode()
    found = []
    for hook in hooks:
        if trigger not in (hook.get("triggers") or TRIGGERS):
            continue
        headers = {"Content-Type": "application/json", **(hook.get("header") or {})}
        if hook.get("secret") and not any(k.lower() == "authorization" for k in headers):
            headers["Authorization"] = hook["secret"]
        found.append(Delivery(hook["url"], headers, data, trigger))
    return found


class Sender:
    """Sends deliveries on one background thread, from a bounded queue."""

    def __init__(self, timeout: float = TIMEOUT):
        self.timeout = timeout
        self._queue: queue.Queue[Delivery] = queue.Queue(QUEUE_SIZE)
        self._thread = threading.Thread(target=self._run, name="webhooks", daemon=True)
        self._thread.start()

    def send(self, found: list[Delivery]) -> None:
        """Queue deliveries; a full queue drops them (logged), it never blocks a request."""
        for delivery in found:
            try:
                self._queue.put_nowait(delivery)
            except queue.Full:
                log.warning("webhook_dropped", host=urlsplit(delivery.url).hostname,
                            trigger=delivery.trigger, reason="queue full")

    def _run(self) -> None:
        while True:
            self._post(self._queue.get())

    def _post(self, delivery: Delivery) -> None:
        host = urlsplit(delivery.url).hostname
        connection = _connection(delivery.url, self.timeout)
        # One deadline for the whole delivery: a target answering a byte at a time within each
        # read's timeout would hold the only sender thread for ever; the socket is cut instead.
        cut = threading.Timer(self.timeout, _cut, (connection,))
        cut.start()
        try:
            parts = urlsplit(delivery.url)
            path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
            connection.request("POST", path, body=delivery.body, headers=delivery.headers)
            status = connection.getresponse().status  # a redirect is an answer, never followed
        except (OSError, ValueError, http.client.HTTPException) as exc:
            log.warning("webhook_failed", host=host, trigger=delivery.trigger,
                        error_type=type(exc).__name__,
                        reason="deadline" if not cut.is_alive() else None)
            return
        finally:
            cut.cancel()
            connection.close()
        log.info("webhook_sent", host=host, trigger=delivery.trigger, status=status)


def _connection(url: str, timeout: float) -> http.client.HTTPConnection:
    """A connection to the URL's host (its scheme, http or https, checked when stored)."""
    parts = urlsplit(url)
    kind = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    return kind(parts.hostname or "", parts.port, timeout=timeout)


def _cut(connection: http.client.HTTPConnection) -> None:
    """End a delivery past its deadline: its reads and writes fail at once."""
    sock = connection.sock
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
