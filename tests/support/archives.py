"""Hostile zips a registry could serve, shared by the sidecar tests and the e2e suite.

    from tests.support.archives import unsafe_archives
    for case, (data, env, reason) in unsafe_archives().items(): ...

Each case is the archive's bytes, the sidecar settings it needs (a lower cap), and a phrase the
sidecar's refusal must contain.
"""

from __future__ import annotations

import io
import os
import stat
import warnings
import zipfile

from devkit.registry import zip_bytes

UnsafeCase = tuple[bytes, dict[str, str], str]


def with_symlink() -> bytes:
    """A zip holding a regular file and a symbolic link to /etc/passwd."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("weights.bin", b"ok")
        link = zipfile.ZipInfo("escape")
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        archive.writestr(link, "/etc/passwd")
    return buffer.getvalue()


def corrupted() -> bytes:
    """A zip whose compressed data has 60 bytes zeroed (its CRC check fails)."""
    data = bytearray(zip_bytes({"weights.bin": bytes(range(256)) * 2000}))
    data[200:260] = b"\x00" * 60
    return bytes(data)


def unsafe_archives(bomb_bytes: int = 30_000_000) -> dict[str, UnsafeCase]:
    """Every unsafe-archive case; the ratio bomb expands to bomb_bytes (over 1 MiB)."""
    return {
        "parent-path": (zip_bytes({"../evil.py": b"x"}), {}, "climbs out with '..'"),
        "absolute-path": (zip_bytes({"/tmp/evil.py": b"x"}), {}, "absolute path"),
        "symlink": (with_symlink(), {}, "symbolic link"),
        "bomb-ratio": (zip_bytes({"zeros.bin": bytes(bomb_bytes)}), {}, "zip bomb"),
        "bomb-total-size": (zip_bytes({"a.bin": bytes(600_000), "b.bin": bytes(600_000)}),
                            {"MAX_MODEL_BYTES": "1000000"}, "cap MAX_MODEL_BYTES"),
        "corrupt": (corrupted(), {}, "zip"),
        "truncated": (zip_bytes({"weights.bin": os.urandom(100_000)})[:50_000], {},
                      "not a readable zip"),
        "not-a-zip": (b"<html>proxy error</html>", {}, "not a readable zip"),
    }


def _patched_headers(data: bytes, local_offset: int, central_offset: int, value: int,
                     width: int = 2, mask: bool = False) -> bytes:
    """The zip with a field of every local and central header set (or OR-ed) to value."""
    patched = bytearray(data)
    for signature, offset in ((b"PK\x03\x04", local_offset), (b"PK\x01\x02", central_offset)):
        start = patched.find(signature)
        while start != -1:
            at = start + offset
            old = int.from_bytes(patched[at:at + width], "little")
            patched[at:at + width] = ((old | value) if mask else value).to_bytes(width, "little")
            start = patched.find(signature, start + 4)
    return bytes(patched)


def _with_duplicate_names() -> bytes:
    buffer = io.BytesIO()
    with warnings.catch_warnings(), zipfile.ZipFile(buffer, "w") as archive:
        warnings.simplefilter("ignore")  # zipfile warns of the duplicate, and writes it
        archive.writestr("weights.bin", b"first")
        archive.writestr("weights.bin", b"second")
    return buffer.getvalue()


def _with_broken_deflate_stream() -> bytes:
    data = bytearray(zip_bytes({"weights.bin": bytes(range(256)) * 100}))
    start = data.find(b"PK\x03\x04")
    name_length = int.from_bytes(data[start + 26:start + 28], "little")
    extra_length = int.from_bytes(data[start + 28:start + 30], "little")
    body = start + 30 + name_length + extra_length
    data[body:body + 4] = b"\xff\xff\xff\xff"  # deflate block type 3: invalid
    return bytes(data)


def _with_crc_error() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("weights.bin", b"honest weights " * 100)
    return buffer.getvalue().replace(b"honest weights", b"HONEST weights", 1)


def malformed_archives() -> dict[str, UnsafeCase]:
    """Zips the zip module cannot read safely: each must be a rejection, never a retry."""
    plain = zip_bytes({"weights.bin": b"w" * 5000})
    return {
        "duplicate-names": (_with_duplicate_names(), {}, "twice"),
        "file-beside-folder": (zip_bytes({"model": b"x", "model/weights.bin": b"y"}), {},
                               "a folder of the same name"),
        "over-long-name": (zip_bytes({"w" * 300 + ".bin": b"x"}), {}, "longer than"),
        "encrypted": (_patched_headers(plain, 6, 8, 0x1, mask=True), {}, "encrypted"),
        "deflate64": (_patched_headers(plain, 8, 10, 9), {}, "compression method 9"),
        "broken-deflate": (_with_broken_deflate_stream(), {}, "unreadable zip"),
        "crc-error": (_with_crc_error(), {}, "CRC"),
    }
