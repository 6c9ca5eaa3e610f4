"""The download's hash-and-write pipeline: order, digest, bounded memory and errors surfacing."""

from __future__ import annotations

import hashlib
import os
import threading

import pytest

from registry_sync.chunk_pipeline import ChunkPipeline, Sink


def _open(path):
    return Sink(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644))


def test_two_files_interleaved_are_written_and_hashed_in_order(tmp_path):
    """Each sink gets its own chunks, in order; its digest is of exactly those bytes."""
    chunks = [os.urandom(n) for n in (1, 70_000, 3, 300_000, 0, 5)]
    pipeline = ChunkPipeline(depth=2)
    first, second = _open(tmp_path / "a"), _open(tmp_path / "b")
    try:
        for chunk in chunks:
            pipeline.put(first, chunk)
            pipeline.put(second, chunk[::-1])
        pipeline.flush(first)
        pipeline.flush(second)
    finally:
        pipeline.close()
        os.close(first.fd)
        os.close(second.fd)
    assert (tmp_path / "a").read_bytes() == b"".join(chunks)
    assert (tmp_path / "b").read_bytes() == b"".join(c[::-1] for c in chunks)
    assert first.digest.hexdigest() == hashlib.sha256(b"".join(chunks)).hexdigest()


def test_a_write_error_reaches_the_receiving_thread_and_no_later_chunk_is_written(tmp_path):
    """A failed write is raised by the next put or the flush; the sink takes no more bytes."""
    sink = Sink(os.open(tmp_path / "ro", os.O_RDONLY | os.O_CREAT, 0o644))
    pipeline = ChunkPipeline(depth=1)
    try:
        with pytest.raises(OSError):
            for _ in range(3):
                pipeline.put(sink, b"x" * 4096)
            pipeline.flush(sink)
        with pytest.raises(OSError):
            pipeline.flush(sink)  # the error stays: a part that failed never looks complete
    finally:
        pipeline.close()
        os.close(sink.fd)
    assert (tmp_path / "ro").stat().st_size == 0


def test_put_waits_while_depth_chunks_wait_for_a_stage(tmp_path):
    """The receiving thread is held back, so memory stays bounded whatever the disk's pace."""
    sink = _open(tmp_path / "slow")
    release, stored = threading.Event(), []

    def slow_store(chunk):
        release.wait(10)
        stored.append(chunk)

    sink.store = slow_store
    pipeline = ChunkPipeline(depth=1)  # one being written, one waiting: the third must wait
    third_queued = threading.Event()

    def producer():
        for chunk in (b"1", b"2", b"3"):
            pipeline.put(sink, chunk)
        third_queued.set()

    thread = threading.Thread(target=producer)
    thread.start()
    try:
        assert not third_queued.wait(0.3)
        release.set()
        assert third_queued.wait(10)
        pipeline.flush(sink)
    finally:
        release.set()
        thread.join(10)
        pipeline.close()
        os.close(sink.fd)
    assert stored == [b"1", b"2", b"3"]
