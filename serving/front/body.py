"""A request's body, read whole on the worker's event loop before the app runs, within bounds.

Bounded in time (FRONT_BODY_TIMEOUT for the whole body), in size (MAX_BODY_BYTES, refused as
soon as it is declared) and in memory: the bodies a worker is receiving at once, small ones
read in one call included, share FRONT_BODY_MEMORY, so clients holding many of them open cannot
make it grow without end (refused with 503 and Retry-After past it). A body must announce its
length: a chunked one is refused with 411, because granian ends a broken or cut chunked body as
if it were complete.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

from granian.rsgi import ProtocolClosed, ProtocolError

# Up to this size a body is read in one call (granian collects it in Rust), its announced size
# counted against FRONT_BODY_MEMORY until it has arrived. Larger ones stream, counted as they
# arrive, so holding many open costs the sender real bytes.
WHOLE_READ_BYTES = 256 * 1024


@dataclass(frozen=True)
class BodyLimits:
    """How long a request body may take to arrive, how large it and all of them may be."""

    max_bytes: int
    timeout: float
    memory: int  # bytes of all the bodies one worker is receiving at once


class BodyRefused(Exception):
    """A body refused: the answer to send instead of calling the app."""

    def __init__(self, status: int, error: str, message: str, retry_after: int | None = None):
        super().__init__(message)
        self.status, self.error, self.retry_after = status, error, retry_after


class BodyMemory:
    """Bytes of the bodies this worker is receiving now, against its limit."""

    def __init__(self, limit: int):
        self.limit, self.used = limit, 0

    def take(self, size: int) -> None:
        """Count size more bytes, or BodyRefused (503) if that passes the limit."""
        if self.used + size > self.limit:
            raise BodyRefused(503, "busy", "too many request bodies are arriving at once; "
                              "send it again shortly", retry_after=1)
        self.used += size


def error_body(error: str, message: str) -> bytes:
    """The app's JSON error shape, for answers the front gives itself."""
    return json.dumps({"error": error, "message": message,
                       "errors": [{"field": "body", "message": message}]}).encode()


async def read_body(scope: Any, protocol: Any, limits: BodyLimits, memory: BodyMemory) -> bytes:
    """The whole body as announced by Content-Length, or BodyRefused saying why not."""
    if scope.headers.get("transfer-encoding") is not None:
        raise BodyRefused(411, "length_required", "send the request body with a Content-Length "
                          "(chunked bodies are not accepted)")
    declared = scope.headers.get("content-length") or "0"
    if not (declared.isascii() and declared.isdigit()):
        raise BodyRefused(400, "invalid_input", "Content-Length is not a number of bytes")
    expected = int(declared)
    if expected > limits.max_bytes:
        raise BodyRefused(413, "request_entity_too_large",
                          f"the request body is larger than {limits.max_bytes} bytes")
    try:
        async with asyncio.timeout(limits.timeout):
            body = await (_whole(protocol, expected, memory) if expected <= WHOLE_READ_BYTES
                          else _streamed(protocol, expected, memory))
    except TimeoutError:
        raise BodyRefused(408, "request_timeout", "the request body did not arrive within "
                          f"{limits.timeout:g} s") from None
    except (ProtocolClosed, ProtocolError):
        body = None  # the client went away before the whole body arrived
    if body is None or len(body) != expected:
        got = "" if body is None else f"after {len(body)} "
        raise BodyRefused(400, "invalid_input", f"the request body ended {got}before the "
                          f"{expected} bytes its Content-Length announced")
    return body


async def _whole(protocol: Any, expected: int, memory: BodyMemory) -> bytes:
    """A small body in one piece, its announced size counted in the body memory meanwhile."""
    memory.take(expected)
    try:
        return await protocol()
    finally:
        memory.used -= expected


async def _streamed(protocol: Any, expected: int, memory: BodyMemory) -> bytes:
    """A large body chunk by chunk, each counted in the worker's body memory as it arrives."""
    parts: list[bytes] = []
    taken = 0
    try:
        async for chunk in protocol:
            if taken + len(chunk) > expected:
                break  # more than announced: refused by the caller, never read on
            memory.take(len(chunk))
            taken += len(chunk)
            parts.append(chunk)
    except (ProtocolClosed, ProtocolError):
        pass  # the client went away: the caller's length check says so
    finally:
        memory.used -= taken
    return b"".join(parts)
