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
import zipfile

from tests.support.registry import zip_bytes

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
