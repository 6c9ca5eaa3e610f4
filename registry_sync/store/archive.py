"""Unpacking an untrusted zip from the registry into a folder, safely.

Refused with a clear error, before a byte is written: entries with absolute paths, drive letters,
backslashes or `..`; symbolic links and other non-regular entries; more entries than the cap;
a declared total size over the cap; an entry whose compression ratio is over the cap (checked for
entries above 1 MiB, as small text files compress well for honest reasons). While unpacking, the
bytes actually written are counted (a lying header cannot exceed its declared size) and each file's
SHA-256 is computed. Whatever the zip module cannot read safely is an UnsafeArchive too, so a
rejection rather than a retry: duplicate names, a file beside a folder of the same name, names too
long for the file system, encrypted entries, compression other than stored/deflate (deflate64...),
a broken compressed stream, a CRC error. Last, the files must match the registry's assets by name
and fileSize.
"""

from __future__ import annotations

import hashlib
import lzma
import stat
import zipfile
import zlib
from collections.abc import Callable, Iterable
from pathlib import Path, PurePosixPath

from model_contract.manifest import FileEntry

from ..config import ArchiveLimits
from ..errors import ArchiveTooLarge, SizeMismatch, Stopped, UnsafeArchive
from ..registries.values import Asset

RATIO_CHECK_MIN_BYTES = 1024 * 1024
_CHUNK = 1024 * 1024
NAME_MAX, PATH_MAX = 255, 4096  # bytes, as on Linux file systems
SUPPORTED_COMPRESSION = {zipfile.ZIP_STORED: "stored", zipfile.ZIP_DEFLATED: "deflate"}
# what reading a damaged or unsupported entry raises, besides BadZipFile
_UNREADABLE = (zlib.error, lzma.LZMAError, EOFError, NotImplementedError, RuntimeError,
               ValueError, zipfile.LargeZipFile)


def safe_member_path(name: str) -> str:
    """The entry's relative POSIX path, or UnsafeArchive if it could escape the target folder."""
    if "\\" in name or "\x00" in name:
        raise UnsafeArchive(f"zip entry {name!r} has a backslash or NUL in its name")
    path = PurePosixPath(name)
    if path.is_absolute() or (path.parts and ":" in path.parts[0]):
        raise UnsafeArchive(f"zip entry {name!r} has an absolute path")
    if ".." in path.parts:
        raise UnsafeArchive(f"zip entry {name!r} climbs out with '..'")
    if not path.parts:
        raise UnsafeArchive(f"zip entry {name!r} has an empty path")
    encoded = [len(part.encode("utf-8", "surrogateescape")) for part in path.parts]
    if max(encoded) > NAME_MAX or len(name.encode("utf-8", "surrogateescape")) > PATH_MAX:
        raise UnsafeArchive(f"zip entry {name[:80]!r}... has a name longer than the file "
                            f"system allows ({NAME_MAX} bytes a part, {PATH_MAX} in all)")
    return path.as_posix()


def _check_entry(info: zipfile.ZipInfo, limits: ArchiveLimits) -> None:
    if info.flag_bits & 0x1:
        raise UnsafeArchive(f"zip entry {info.filename!r} is encrypted")
    if info.compress_type not in SUPPORTED_COMPRESSION:
        raise UnsafeArchive(f"zip entry {info.filename!r} uses compression method "
                            f"{info.compress_type} (only stored and deflate are read)")
    file_type = stat.S_IFMT(info.external_attr >> 16)  # 0 when the zip tool recorded none
    if file_type not in (0, stat.S_IFREG, stat.S_IFDIR):
        kind = "a symbolic link" if file_type == stat.S_IFLNK else "not a regular file"
        raise UnsafeArchive(f"zip entry {info.filename!r} is {kind}")
    if info.file_size > RATIO_CHECK_MIN_BYTES:
        ratio = info.file_size / max(info.compress_size, 1)
        if ratio > limits.max_ratio:
            raise ArchiveTooLarge(f"zip entry {info.filename!r} expands {ratio:.0f}x "
                                  f"(cap MAX_COMPRESSION_RATIO={limits.max_ratio:g}): a zip bomb?")


def inspect(archive: zipfile.ZipFile, limits: ArchiveLimits) -> list[tuple[zipfile.ZipInfo, str]]:
    """Check every entry against the rules and caps; return the files with their safe paths."""
    entries = archive.infolist()
    if len(entries) > limits.max_entries:
        raise ArchiveTooLarge(f"zip holds {len(entries)} entries (cap MAX_ZIP_ENTRIES="
                              f"{limits.max_entries})")
    files, total, seen = [], 0, set()
    for info in entries:
        path = safe_member_path(info.filename).rstrip("/")
        _check_entry(info, limits)
        if path in seen:
            raise UnsafeArchive(f"zip holds {path!r} twice")
        seen.add(path)
        if info.is_dir():
            continue
        total += info.file_size
        if total > limits.max_bytes:
            raise ArchiveTooLarge(f"zip expands to over {limits.max_bytes} bytes "
                                  "(cap MAX_MODEL_BYTES)")
        files.append((info, path))
    _check_no_file_is_a_folder(seen, {path for _info, path in files})
    return files


def _check_no_file_is_a_folder(paths: set[str], files: set[str]) -> None:
    """UnsafeArchive if a file's path is also the folder of another entry."""
    for path in paths:
        parts = PurePosixPath(path).parts
        for depth in range(1, len(parts)):
            folder = "/".join(parts[:depth])
            if folder in files:
                raise UnsafeArchive(f"zip holds a file {folder!r} and a folder of the same "
                                    f"name (for {path!r})")


def extract(zip_path: Path, dest: Path, assets: Iterable[Asset], limits: ArchiveLimits,
            should_stop: Callable[[], bool] = lambda: False) -> tuple[FileEntry, ...]:
    """Unpack zip_path into dest after checking it; return each file's size and SHA-256."""
    try:
        with zipfile.ZipFile(zip_path) as archive:
            files = inspect(archive, limits)
            entries = tuple(_extract_one(archive, info, path, dest, should_stop)
                            for info, path in files)
    except zipfile.BadZipFile as exc:
        raise UnsafeArchive(f"not a readable zip: {exc}") from None
    except _UNREADABLE as exc:
        raise UnsafeArchive(f"unreadable zip ({type(exc).__name__}): {exc}"[:300]) from None
    match_assets(entries, assets)
    return entries


def _extract_one(archive: zipfile.ZipFile, info: zipfile.ZipInfo, path: str, dest: Path,
                 should_stop: Callable[[], bool]) -> FileEntry:
    target = dest / path
    target.parent.mkdir(parents=True, exist_ok=True)
    digest, written = hashlib.sha256(), 0
    with archive.open(info) as source, open(target, "xb") as out:
        while chunk := source.read(_CHUNK):
            written += len(chunk)
            if written > info.file_size:
                raise ArchiveTooLarge(f"zip entry {path!r} expands beyond its declared size")
            digest.update(chunk)
            out.write(chunk)
            if should_stop():
                raise Stopped("stop requested while unpacking")
    return FileEntry(path=path, size=written, sha256=digest.hexdigest())


def match_assets(entries: Iterable[FileEntry], assets: Iterable[Asset]) -> None:
    """The unpacked files must be the registry's assets, with the registry's fileSize."""
    expected = {a.file_name: a.file_size for a in assets}
    if not expected:
        return  # a version registered without assets lists none to compare with
    found = {e.path: e.size for e in entries}
    for name, size in expected.items():
        if name not in found:
            raise SizeMismatch(f"asset {name!r} listed by the registry is not in the zip")
        if found[name] != size:
            raise SizeMismatch(f"asset {name!r} is {found[name]} bytes in the zip, the "
                               f"registry's fileSize says {size}")
    extra = sorted(set(found) - set(expected))
    if extra:
        raise SizeMismatch(f"zip holds files the registry does not list: {extra[:5]}")
