"""Hashing and writing received chunks on two helper threads, in order, with bounded memory.

A download is a pipeline over the cores: the receiving thread only reads the socket and hands
each chunk to two helper threads, one updating the asset's SHA-256, the other writing it
(os.write on the raw descriptor, no buffered copy), each in order. SHA-256 alone costs about
twice what receiving or writing does, and all three release the GIL, so the stages run side by
side. Hand-overs are a bounded queue per stage, not futures: at 2,000 chunks a GiB, Python's
own bookkeeping shows. At most `depth` chunks wait for each stage, besides the one it works on.
"""

from __future__ import annotations

import hashlib
import os
import queue
import threading
from pathlib import Path
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
    """Two helper threads, hasher and writer, each taking every chunk of its sinks in order.

    The stages are independent (the writer does not wait for the hash), each with its own
    bound of `depth` waiting chunks, so the receiving thread waits only for a stage behind.
    """

    def __init__(self, depth: int):
        self._stages = [_Stage("asset-hasher", depth, _hash), _Stage("asset-writer", depth, _write)]

    def put(self, sink: Sink, chunk: bytes) -> None:
        """Queue a chunk after the ones before it; waits while a stage has `depth` waiting."""
        for stage in self._stages:
            stage.put((sink, chunk))
        if sink.error is not None:
            raise sink.error

    def flush(self, sink: Sink) -> None:
        """Wait until every chunk queued for the sink is hashed and written; raise its error."""
        marks = [threading.Event() for _ in self._stages]
        for stage, mark in zip(self._stages, marks, strict=True):
            stage.put((sink, mark))
        for mark in marks:
            mark.wait()
        if sink.error is not None:
            raise sink.error

    def close(self) -> None:
        """Stop both threads once the chunks queued so far are through."""
        for stage in self._stages:
            stage.close()


def _hash(sink: Sink, chunk: bytes) -> None:
    sink.digest.update(chunk)


def _write(sink: Sink, chunk: bytes) -> None:
    sink.store(chunk)


class _Stage:
    """One helper thread applying `work` to each queued (sink, chunk) in order."""

    def __init__(self, name: str, depth: int, work):
        self._queue: queue.Queue[tuple[Sink, Any] | None] = queue.Queue(depth)
        self._work = work
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def put(self, item: tuple[Sink, Any]) -> None:
        """Queue an item; waits while `depth` are queued (and one is being worked on)."""
        self._queue.put(item)

    def close(self) -> None:
        """End the thread after what is queued."""
        self._queue.put(None)
        self._thread.join()

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            sink, chunk = item
            if isinstance(chunk, threading.Event):
                chunk.set()
            elif sink.error is None:
                try:
                    self._work(sink, chunk)
                except BaseException as exc:  # handed to the receiving thread
                    sink.error = exc


class PartFile:
    """A partly received asset: its file under the work folder, bytes and running SHA-256.

    Chunks go through a ChunkPipeline: hashed and written in order on its helper threads while
    the receiving thread reads the next.
    """

    def __init__(self, path: Path, pipeline: ChunkPipeline):
        self.path, self.pipeline, self.size = path, pipeline, 0
        self.sink = Sink(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644))

    def write(self, chunk: bytes) -> None:
        """Append a chunk, after the ones before it."""
        self.pipeline.put(self.sink, chunk)
        self.size += len(chunk)

    def restart(self) -> None:
        """Forget what was received (the server cannot resume)."""
        self.pipeline.flush(self.sink)
        if self.size:  # ext4 flushes a file truncated to 0 to disk on close: never for nothing
            os.ftruncate(self.sink.fd, 0)
            os.lseek(self.sink.fd, 0, os.SEEK_SET)
        self.size, self.sink.digest = 0, hashlib.sha256()

    def close(self) -> str:
        """Finish writing; the digest of every byte received."""
        try:
            self.pipeline.flush(self.sink)  # no chunk may touch the file after it is closed
        finally:
            os.close(self.sink.fd)
        return self.sink.digest.hexdigest()
