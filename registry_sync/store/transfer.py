"""Streaming a response body into a file under a deadline: the primitive of every download.

A download's deadline follows the size the registry announced: COMET_DOWNLOAD_TIMEOUT plus the
bytes still to come at COMET_MIN_DOWNLOAD_RATE, so a healthy download of any size finishes and a
body dripped a few bytes a second is abandoned. Between bytes the socket's own timeout
(COMET_DOWNLOAD_TIMEOUT) still ends a stall.
"""

from __future__ import annotations

import http.client
from collections.abc import Callable, Iterator
from typing import Protocol, cast

import requests
import urllib3

from ..errors import SizeMismatch

# Up to this much per read: 512 KiB keeps Python's per-read cost small (a read returns what has
# arrived, so a slow body still yields soon and a stop request or the deadline is seen quickly);
# read into reused buffers, 256 KiB to 2 MiB measured the same CPU per GiB.
CHUNK_SIZE = 512 * 1024


class Retryable(Exception):
    """A failure worth another attempt, with the server's hint of when, if any."""

    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


class Sink(Protocol):
    """Where received bytes go: a file, or anything that writes in order."""

    def write(self, chunk: bytes | memoryview, /) -> object:
        """Take the next chunk (done with it on return: the buffer is read into again)."""


class Buffers(Protocol):
    """A sink that lends the buffers bytes are read into (chunk_pipeline.PartFile)."""

    def buffer(self) -> memoryview:
        """Where to read the next bytes."""

    def commit(self, size: int, /) -> None:
        """The first `size` bytes of the buffer are the next bytes."""


class _OneBuffer:
    """Buffers over a plain Sink: one buffer, handed to write() after each read."""

    def __init__(self, out: Sink):
        self.out, self.view = out, memoryview(bytearray(CHUNK_SIZE))

    def buffer(self) -> memoryview:
        return self.view

    def commit(self, size: int) -> None:
        self.out.write(self.view[:size])


def deadline_after(now: float, stall: float, remaining: int, min_rate: int) -> float:
    """When a download of `remaining` announced bytes must be over."""
    return now + stall + max(remaining, 0) / min_rate


def receive(response: requests.Response, out: Sink | Buffers, *, what: str, deadline: float,
            clock: Callable[[], float], limit: int | None = None,
            on_chunk: Callable[[int], None] | None = None) -> int:
    """Copy the body into out; return its bytes. Retryable on a cut or past the deadline.

    More bytes than `limit` is a SizeMismatch at once (never written past it). `on_chunk` is
    told the size of each piece as it is committed.
    """
    buffers = cast(Buffers, out) if hasattr(out, "commit") else _OneBuffer(cast(Sink, out))
    received = 0
    try:
        with response:
            read = body_reader(response)
            while True:
                view = buffers.buffer()
                if limit is not None:
                    view = view[:limit - received + 1]
                if not (size := read(view)):
                    break
                received += size
                if limit is not None and received > limit:
                    raise SizeMismatch(f"{what} is longer than the {limit} bytes the registry "
                                       "announced")
                buffers.commit(size)
                if on_chunk is not None:
                    on_chunk(size)
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


def body_reader(response: requests.Response) -> Callable[[memoryview], int]:
    """A function reading the next bytes of the body into a buffer: their count, 0 at the end.

    Each call returns what one read of the socket gets, so a server dripping bytes cannot hold
    the loop (and its deadline check) for long. A body of known length, neither chunked nor
    encoded, is read straight into the buffer (recv_into); any other through urllib3, copied.
    urllib3's and the socket's errors become requests' own, as iter_content would raise them.
    """
    raw, decode = response.raw, _encoded(response)
    source = getattr(raw, "_fp", None)
    if (isinstance(source, http.client.HTTPResponse) and source.fp is not None
            and not source.chunked and source.length is not None and not decode):
        read = _direct_reader(raw, source)
    else:
        def read(view: memoryview) -> int:
            chunk = raw.read1(len(view), decode_content=decode)
            view[:len(chunk)] = chunk
            return len(chunk)

    def read_mapping_errors(view: memoryview) -> int:
        try:
            return read(view)
        except (urllib3.exceptions.ReadTimeoutError, TimeoutError) as exc:
            raise requests.exceptions.ReadTimeout(str(exc)) from exc
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise requests.exceptions.ChunkedEncodingError(str(exc)) from exc

    return read_mapping_errors


def _direct_reader(raw: urllib3.HTTPResponse,
                   source: http.client.HTTPResponse) -> Callable[[memoryview], int]:
    """Reads into the buffer from http.client's own socket reader, keeping its count of bytes.

    A fresh bytes object per read (urllib3's read1) cost malloc and page faults on every chunk.
    Once the announced length is in, urllib3 is asked for the (empty) rest: that closes the
    body and puts the connection back in its pool, as its own reads do.
    """
    socket_reader = source.fp

    def read(view: memoryview) -> int:
        assert source.length is not None  # read only with a Content-Length
        view = view[:source.length]
        if not view:
            raw.read(decode_content=False)
            return 0
        size = socket_reader.readinto1(view)
        source.length -= size
        return size

    return read


def arriving_chunks(response: requests.Response) -> Iterator[bytes]:
    """The streamed body in pieces as they arrive, each at most CHUNK_SIZE bytes (body_reader's
    reads, each copied out of one reused buffer)."""
    read, buffer = body_reader(response), memoryview(bytearray(CHUNK_SIZE))
    while size := read(buffer):
        yield bytes(buffer[:size])


def _encoded(response: requests.Response) -> bool:
    """Whether the body has a Content-Encoding to undo.

    Without one there is nothing to decode; asking urllib3 to decode anyway routes every read
    through its decoded-bytes queue, one more copy of each byte.
    """
    return response.headers.get("Content-Encoding", "identity").strip().lower() != "identity"


def content_length(response: requests.Response) -> int | None:
    """The Content-Length header as a number, or None when absent or malformed."""
    value = response.headers.get("Content-Length")
    return int(value) if value and value.isdigit() else None
