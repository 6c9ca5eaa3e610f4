"""Receiving into a few reused buffers: each written at once, then hashed on a helper thread.

A download is a pipeline over the two cores: the receiving thread reads the socket straight
into a buffer (no bytes object per read) and writes it to the part file (os.write on the raw
descriptor, no buffered copy); a helper thread updates the asset's SHA-256 over the same buffer
and gives it back. Receiving plus writing costs about what SHA-256 does, and all three release
the GIL, so the two threads run side by side. Memory is the buffers, allocated once: the
receiving thread waits for one while all are being hashed.

Measured (1 GiB in 4 assets on loopback, 2 cores): a fresh 512 KiB bytes object per read,
handed to a hashing and a writing thread, cost 1.28-1.40 CPU s per GiB against 1.17-1.25 for
this, about the work itself (receive and write 0.50-0.57, SHA-256 0.65); the rest was malloc
and page faults of the chunks (over 10 times as many) and waking three threads per chunk.
"""

from __future__ import annotations

import hashlib
import os
import queue
import threading
from pathlib import Path


class Sink:
    """One file being received: its descriptor, running SHA-256, and the first error met."""

    def __init__(self, fd: int):
        self.fd = fd
        self.digest = hashlib.sha256()
        self.error: BaseException | None = None

    def store(self, chunk: memoryview) -> None:
        """Write the whole chunk at the file's current end."""
        while chunk:
            chunk = chunk[os.write(self.fd, chunk):]


class ChunkPipeline:
    """`buffers` buffers of `size` bytes, and the thread hashing each filled one in order.

    The receiving thread borrows a buffer, fills it, then commits it to a sink: written there
    and then, hashed on the helper thread, after which the buffer is free again.
    """

    def __init__(self, buffers: int, size: int):
        self._free: queue.SimpleQueue[memoryview] = queue.SimpleQueue()
        for _ in range(buffers):
            self._free.put(memoryview(bytearray(size)))
        self._hashing: queue.SimpleQueue[tuple[Sink, memoryview | threading.Event, int] | None]
        self._hashing = queue.SimpleQueue()
        self._lent: memoryview | None = None
        self._thread = threading.Thread(target=self._run, name="asset-hasher", daemon=True)
        self._thread.start()

    def buffer(self) -> memoryview:
        """The buffer to read the next bytes into; waits while every buffer is being hashed.

        The same one until it is committed, so a read that fails lends no buffer for good.
        """
        if self._lent is None:
            self._lent = self._free.get()
        return self._lent

    def commit(self, sink: Sink, size: int) -> None:
        """Write the first `size` bytes of the lent buffer to the sink, then hash them."""
        if sink.error is not None:
            raise sink.error
        chunk, self._lent = self._lent, None
        assert chunk is not None, "commit without a buffer"
        try:
            sink.store(chunk[:size])
        except BaseException as exc:
            sink.error = exc  # a part that failed never looks complete
            self._free.put(chunk)
            raise
        self._hashing.put((sink, chunk, size))

    def flush(self, sink: Sink) -> None:
        """Wait until every chunk committed to the sink is hashed; raise its error."""
        mark = threading.Event()
        self._hashing.put((sink, mark, 0))
        mark.wait()
        if sink.error is not None:
            raise sink.error

    def close(self) -> None:
        """Stop the thread once the chunks committed so far are hashed."""
        self._hashing.put(None)
        self._thread.join()

    def _run(self) -> None:
        while (item := self._hashing.get()) is not None:
            sink, chunk, size = item
            if isinstance(chunk, threading.Event):
                chunk.set()
                continue
            try:
                if sink.error is None:
                    sink.digest.update(chunk[:size])
            except BaseException as exc:  # handed to the receiving thread
                sink.error = exc
            finally:
                self._free.put(chunk)


class PartFile:
    """A partly received asset: its file under the work folder, bytes and running SHA-256.

    Bytes arrive through a ChunkPipeline's buffers: written as they come, hashed on its helper
    thread while the receiving thread reads the next.
    """

    def __init__(self, path: Path, pipeline: ChunkPipeline):
        self.path, self.pipeline, self.size = path, pipeline, 0
        self.sink = Sink(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644))

    def buffer(self) -> memoryview:
        """Where to read the next bytes."""
        return self.pipeline.buffer()

    def commit(self, size: int) -> None:
        """Append the first `size` bytes of the buffer, after the ones before them."""
        self.pipeline.commit(self.sink, size)
        self.size += size

    def restart(self) -> None:
        """Forget what was received (the server cannot resume)."""
        self.pipeline.flush(self.sink)
        if self.size:  # ext4 flushes a file truncated to 0 to disk on close: never for nothing
            os.ftruncate(self.sink.fd, 0)
            os.lseek(self.sink.fd, 0, os.SEEK_SET)
        self.size, self.sink.digest = 0, hashlib.sha256()

    def close(self) -> str:
        """Finish hashing; the digest of every byte received."""
        try:
            self.pipeline.flush(self.sink)  # the digest is whole once every chunk is hashed
        finally:
            os.close(self.sink.fd)
        return self.sink.digest.hexdigest()
