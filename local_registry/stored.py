"""A zip member stored without compression, read straight from the zip file's own bytes.

zipfile's member reader copies every block through its buffers and a CRC-32, about 0.35 CPU s
per GiB, most of what serving an asset cost: on a 2-core machine that starved whichever client
was downloading. A stored member is a plain byte range of the file, so it is read as such, or
handed to the kernel with sendfile when nothing (a fault rule) needs to see the bytes.
"""

from __future__ import annotations

import os
import socket
import struct
import zipfile
from collections.abc import Iterator
from pathlib import Path

_LOCAL_HEADER = struct.Struct("<4s2B4HL2L2H")  # zipfile's own layout of a local file header
_ENCRYPTED = 0x1


def stored_member(path: Path, info: zipfile.ZipInfo) -> StoredMember | None:
    """The member as a plain byte range of the file, or None when it is compressed or encrypted."""
    if info.compress_type != zipfile.ZIP_STORED or info.flag_bits & _ENCRYPTED:
        return None
    file = open(path, "rb", buffering=0)  # noqa: SIM115 - the answer closes it when sent
    try:
        file.seek(info.header_offset)
        header = file.read(_LOCAL_HEADER.size)
        if len(header) != _LOCAL_HEADER.size or header[:4] != zipfile.stringFileHeader:
            raise zipfile.BadZipFile(f"bad local header for {info.filename!r}")
        fields = _LOCAL_HEADER.unpack(header)
        start = info.header_offset + _LOCAL_HEADER.size + fields[10] + fields[11]
    except BaseException:
        file.close()
        raise
    return StoredMember(file, start, info.file_size)


class StoredMember:
    """Readable and seekable like zipfile's member reader, over [start, start + size)."""

    def __init__(self, file, start: int, size: int):
        self.file, self.start, self.size, self.position = file, start, size, 0

    def seek(self, offset: int) -> None:
        """Go to this offset of the member."""
        self.position = min(max(offset, 0), self.size)

    def read(self, size: int = -1) -> bytes:
        """Up to size bytes from the current offset (all the rest when size < 0)."""
        left = self.size - self.position
        wanted = left if size < 0 else min(size, left)
        chunk = os.pread(self.file.fileno(), wanted, self.start + self.position) if wanted else b""
        self.position += len(chunk)
        return chunk

    def sent_to(self, sock: socket.socket, length: int) -> Iterator[bytes]:
        """A WSGI body that sends `length` bytes from the offset with sendfile.

        Its first (empty) item makes the server send the status and headers; the bytes then go
        from the page cache to the socket without passing through Python.
        """
        yield b""
        if length > 0:  # socket.sendfile sends to the end of the file when count is 0
            self.position += sock.sendfile(self.file, self.start + self.position, length)

    def close(self) -> None:
        """Close the file."""
        self.file.close()
