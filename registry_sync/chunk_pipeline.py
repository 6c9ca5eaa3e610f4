"""Hashing and writing received chunks on two helper threads, in order, with bounded memory.

A download is a pipeline over the cores: the receiving thread only reads the socket and hands
each chunk on; one helper thread updates the asset's SHA-256, then passes the chunk to another
that writes it (os.write on the raw descriptor, no buffered copy). SHA-256 alone costs about
twice what receiving or writing does, and all three release the GIL, so on 2 cores the stages
run side by side. Hand-overs are C queues and one semaphore per chunk, not futures: at 2,000
chunks a GiB, Python's own bookkeeping shows. At most `depth` chunks are in flight.
"""

from __future__ import annotations

import hashlib
import os
import queue
import threading
from typing import Any


class Sink:
    """One file being received: its descriptor, running SHA-256, and the first error met."""

    def __init__(self, fd: int):
        self.fd = fd
        self.digest = hashlib.sha256()
        self.error: BaseException | None = None

    def store(self, chunk: bytes) -> None:
        """Write the whole chunk at the file's current end."""
        view = memoryview(chunk)
        while view:
            view = view[os.write(self.fd, view):]


class ChunkPipeline:
    """Two helper threads, hasher then writer, shared by every Sink of one download."""

    def __init__(self, depth: int):
        self._slots = threading.BoundedSemaphore(depth)
        self._to_hash: queue.SimpleQueue[tuple[Sink, Any] | None] = queue.SimpleQueue()
        self._to_write: queue.SimpleQueue[tuple[Sink, Any] | None] = queue.SimpleQueue()
        self._threads = [threading.Thread(target=self._hash, name="asset-hasher", daemon=True),
                         threading.Thread(target=self._write, name="asset-writer", daemon=True)]
        for thread in self._threads:
            thread.start()

    def put(self, sink: Sink, chunk: bytes) -> None:
        """Queue a chunk after the ones before it; waits while `depth` are in flight."""
        self._slots.acquire()
        self._to_hash.put((sink, chunk))
        if sink.error is not None:
            raise sink.error

    def flush(self, sink: Sink) -> None:
        """Wait until every chunk queued for the sink is hashed and written; raise its error."""
        done = threading.Event()
        self._slots.acquire()
        self._to_hash.put((sink, done))
        done.wait()
        if sink.error is not None:
            raise sink.error

    def close(self) -> None:
        """Stop both threads once the chunks queued so far are through."""
        self._to_hash.put(None)
        for thread in self._threads:
            thread.join()

    def _hash(self) -> None:
        while (item := self._to_hash.get()) is not None:
            sink, chunk = item
            if sink.error is None and isinstance(chunk, bytes):
                try:
                    sink.digest.update(chunk)
                except BaseException as exc:  # handed to the receiving thread
                    sink.error = exc
            self._to_write.put(item)
        self._to_write.put(None)

    def _write(self) -> None:
        while (item := self._to_write.get()) is not None:
            sink, chunk = item
            if isinstance(chunk, threading.Event):
                chunk.set()
            elif sink.error is None:
                try:
                    sink.store(chunk)
                except BaseException as exc:  # handed to the receiving thread
                    sink.error = exc
            self._slots.release()
