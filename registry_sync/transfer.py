"""Streaming a response body into a file under a deadline: the primitive of every download.

A download's deadline follows the size the registry announced: COMET_DOWNLOAD_TIMEOUT plus the
bytes still to come at COMET_MIN_DOWNLOAD_RATE, so a healthy download of any size finishes and a
body dripped a few bytes a second is abandoned. Between bytes the socket's own timeout
(COMET_DOWNLOAD_TIMEOUT) still ends a stall.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Protocol

import requests
import urllib3

from .errors import SizeMismatch

# Up to this much per read: 512 KiB keeps Python's per-read cost small (a read returns what has
# arrived, so a slow body still yields soon and a stop request or the deadline is seen quickly);
# 1 MiB used a little less CPU but left peak RSS varying by several MiB from run to run.
CHUNK_SIZE = 512 * 1024


class Retryable(Exception):
    """A failure worth another attempt, with the server's hint of when, if any."""

    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


class Sink(Protocol):
    """Where received bytes go: a file, or anything that writes in order."""

    def write(self, chunk: bytes, /) -> object:
        """Take the next chunk."""


def deadline_after(now: float, stall: float, remaining: int, min_rate: int) -> float:
    """When a download of `remaining` announced bytes must be over."""
    return now + stall + max(remaining, 0) / min_rate


def receive(response: requests.Response, out: Sink, *, what: str, deadline: float,
            clock: Callable[[], float], limit: int | None = None,
            on_chunk: Callable[[bytes], None] | None = None) -> int:
    """Copy the body into out; return its bytes. Retryable on a cut or past the deadline.

    More bytes than `limit` is a SizeMismatch at once (never written past it).
    """
    received = 0
    try:
        with response:
            for chunk in arriving_chunks(response):
                received += len(chunk)
                if limit is not None and received > limit:
                    raise SizeMismatch(f"{what} is longer than the {limit} bytes the registry "
                                       "announced")
                out.write(chunk)
                if on_chunk is not None:
                    on_chunk(chunk)
                if clock() > deadline:
                    raise Retryable(f"{what} too slow: {received} bytes by the deadline "
                                    "(COMET_MIN_DOWNLOAD_RATE)")
    except (requests.ConnectionError, requests.Timeout,
            requests.exceptions.ChunkedEncodingError) as exc:
        raise Retryable(f"{what} cut short after {received} bytes: "
                        f"{type(exc).__name__}") from exc
    length = content_length(response)
    if length not in (None, received):
        raise Retryable(f"{what} cut short: {received} of {length} bytes")
    return received


def arriving_chunks(response: requests.Response) -> Iterator[bytes]:
    """The streamed body in pieces as they arrive, each at most CHUNK_SIZE bytes.

    Unlike iter_content, which waits until a whole chunk is there, this returns whatever a read
    gets, so a server dripping bytes cannot hold the loop (and its deadline check) for long.
    urllib3's errors become requests' own, as iter_content would raise them.
    """
    raw = response.raw
    # Without a Content-Encoding there is nothing to decode; asking urllib3 to decode anyway
    # routes every read through its decoded-bytes queue, one more copy of each byte.
    decode = response.headers.get("Content-Encoding", "identity").strip().lower() != "identity"
    try:
        while chunk := raw.read1(CHUNK_SIZE, decode_content=decode):
            yield chunk
    except urllib3.exceptions.ReadTimeoutError as exc:
        raise requests.exceptions.ReadTimeout(str(exc)) from exc
    except urllib3.exceptions.HTTPError as exc:
        raise requests.exceptions.ChunkedEncodingError(str(exc)) from exc


def content_length(response: requests.Response) -> int | None:
    """The Content-Length header as a number, or None when absent or malformed."""
    value = response.headers.get("Content-Length")
    return int(value) if value and value.isdigit() else None
