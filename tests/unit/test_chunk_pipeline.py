"""The download's receive-write-hash pipeline: order, digests, bounded memory, errors surfacing."""

from __future__ import annotations

import hashlib
import os
import threading

import pytest

from registry_sync.store.chunk_pipeline import ChunkPipeline, Sink


def _open(path):
    return Sink(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644))


def _put(pipeline: ChunkPipeline, sink: Sink, chunk: bytes) -> None:
    """What the receiving thread does: fill the lent buffer, then commit it."""
    buffer = pipeline.buffer()
    buffer[:len(chunk)] = chunk
    pipeline.commit(sink, len(chunk))


def test_two_files_interleaved_are_written_and_hashed_in_order(tmp_path):
    """Each sink gets its own chunks, in order; its digest is of exactly those bytes."""
    chunks = [os.urandom(n) for n in (1, 70_000, 3, 100_000, 0, 5)]
    pipeline = ChunkPipeline(buffers=2, size=100_000)
    first, second = _open(tmp_path / "a"), _open(tmp_path / "b")
    try:
        for chunk in chunks:
            _put(pipeline, first, chunk)
            _put(pipeline, second, chunk[::-1])
        pipeline.flush(first)
        pipeline.flush(second)
    finally:
        pipeline.close()
        os.close(first.fd)
        os.close(second.fd)
    assert (tmp_path / "a").read_bytes() == b"".join(chunks)
    assert (tmp_path / "b").read_bytes() == b"".join(c[::-1] for c in chunks)
    assert first.digest.hexdigest() == hashlib.sha256(b"".join(chunks)).hexdigest()
    assert second.digest.hexdigest() == hashlib.sha256(
        b"".join(c[::-1] for c in chunks)).hexdigest()


def test_a_write_error_reaches_the_receiving_thread_and_no_later_chunk_is_taken(tmp_path):
    """A failed write is raised at once and again by any later commit or flush."""
    sink = Sink(os.open(tmp_path / "ro", os.O_RDONLY | os.O_CREAT, 0o644))
    pipeline = ChunkPipeline(buffers=1, size=4096)
    try:
        with pytest.raises(OSError):
            _put(pipeline, sink, b"x" * 4096)
        with pytest.raises(OSError):
            _put(pipeline, sink, b"y" * 4096)
        with pytest.raises(OSError):
            pipeline.flush(sink)  # the error stays: a part that failed never looks complete
        assert sink.digest.hexdigest() == hashlib.sha256().hexdigest()
    finally:
        pipeline.close()
        os.close(sink.fd)
    assert (tmp_path / "ro").stat().st_size == 0


def test_a_buffer_lent_to_a_failed_read_is_lent_again():
    """A read that fails before its commit keeps no buffer: a retry finds one at once."""
    pipeline = ChunkPipeline(buffers=1, size=16)
    try:
        assert pipeline.buffer() is pipeline.buffer()  # nothing committed: the same buffer
    finally:
        pipeline.close()


def test_the_receiving_thread_waits_while_every_buffer_is_being_hashed(tmp_path):
    """Memory stays the buffers, whatever the hashing's pace."""
    sink = _open(tmp_path / "slow")
    release, hashed = threading.Event(), []

    class SlowDigest:
        def update(self, chunk):
            release.wait(10)
            hashed.append(bytes(chunk))

    sink.digest = SlowDigest()
    pipeline = ChunkPipeline(buffers=2, size=1)  # both being hashed: the third must wait
    third_read = threading.Event()

    def receiver():
        for chunk in (b"1", b"2", b"3"):
            _put(pipeline, sink, chunk)
        third_read.set()

    thread = threading.Thread(target=receiver)
    thread.start()
    try:
        assert not third_read.wait(0.3)
        release.set()
        assert third_read.wait(10)
        pipeline.flush(sink)
    finally:
        release.set()
        thread.join(10)
        pipeline.close()
        os.close(sink.fd)
    assert hashed == [b"1", b"2", b"3"]
    assert (tmp_path / "slow").read_bytes() == b"123"
