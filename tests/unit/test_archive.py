"""Untrusted zips are refused with a clear error before anything escapes the target folder."""

import io
import stat
import zipfile
from pathlib import Path

import pytest

from model_contract.manifest import sha256_of
from registry_sync.config import ArchiveLimits
from registry_sync.errors import ArchiveTooLarge, SizeMismatch, UnsafeArchive
from registry_sync.registries.values import Asset
from registry_sync.store import archive
from tests.support.archives import malformed_archives

LIMITS = ArchiveLimits(max_bytes=50 * 1024 * 1024, max_entries=100, max_ratio=100)


def make_zip(path: Path, entries: dict[str, bytes], symlink: str | None = None) -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for name, data in entries.items():
            z.writestr(name, data)
        if symlink:
            info = zipfile.ZipInfo(symlink)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            z.writestr(info, "/etc/passwd")
    return path


def assets(entries: dict[str, bytes]) -> list[Asset]:
    return [Asset(name, len(data), "", "") for name, data in entries.items()]


def test_a_good_zip_unpacks_with_sizes_and_hashes(tmp_path):
    entries = {"model.pkl": b"x" * 1000, "sub/meta.json": b"{}"}
    files = archive.extract(make_zip(tmp_path / "a.zip", entries), tmp_path / "out",
                            assets(entries), LIMITS)
    assert {f.path: f.size for f in files} == {"model.pkl": 1000, "sub/meta.json": 2}
    for f in files:
        assert f.sha256 == sha256_of(tmp_path / "out" / f.path)


@pytest.mark.parametrize(("name", "message"), [
    ("../evil.py", "climbs out with '..'"),
    ("a/../../evil.py", "climbs out"),
    ("/etc/cron.d/evil", "absolute path"),
    ("C:/evil", "absolute path"),
    ("a\\..\\evil", "backslash"),
])
def test_paths_that_could_escape_are_refused(tmp_path, name, message):
    zip_path = make_zip(tmp_path / "a.zip", {name: b"boom"})
    with pytest.raises(UnsafeArchive, match=message):
        archive.extract(zip_path, tmp_path / "out", [], LIMITS)
    assert not (tmp_path / "out").exists()
    assert not (tmp_path / "evil.py").exists()


def test_symlinks_are_refused(tmp_path):
    zip_path = make_zip(tmp_path / "a.zip", {"ok.txt": b"1"}, symlink="link")
    with pytest.raises(UnsafeArchive, match="symbolic link"):
        archive.extract(zip_path, tmp_path / "out", [], LIMITS)


def test_a_zip_bomb_is_refused_by_ratio_and_by_total_size(tmp_path):
    bomb = make_zip(tmp_path / "bomb.zip", {"zeros": bytes(20 * 1024 * 1024)})
    with pytest.raises(ArchiveTooLarge, match="MAX_COMPRESSION_RATIO"):
        archive.extract(bomb, tmp_path / "out", [], LIMITS)
    with pytest.raises(ArchiveTooLarge, match="MAX_MODEL_BYTES"):
        archive.extract(bomb, tmp_path / "out2", [],
                        ArchiveLimits(max_bytes=1024 * 1024, max_entries=10, max_ratio=1e9))


def test_too_many_entries_are_refused(tmp_path):
    many = make_zip(tmp_path / "many.zip", {f"f{i}": b"" for i in range(101)})
    with pytest.raises(ArchiveTooLarge, match="MAX_ZIP_ENTRIES"):
        archive.extract(many, tmp_path / "out", [], LIMITS)


def test_corrupt_and_truncated_zips_are_refused(tmp_path):
    good = make_zip(tmp_path / "a.zip", {"model.pkl": bytes(range(256)) * 400}).read_bytes()
    truncated = tmp_path / "t.zip"
    truncated.write_bytes(good[: len(good) // 2])
    with pytest.raises(UnsafeArchive, match="not a readable zip"):
        archive.extract(truncated, tmp_path / "o1", [], LIMITS)
    corrupt = bytearray(good)
    corrupt[100:140] = b"\xff" * 40  # inside the compressed data: CRC or inflate fails
    (tmp_path / "c.zip").write_bytes(bytes(corrupt))
    with pytest.raises(UnsafeArchive):
        archive.extract(tmp_path / "c.zip", tmp_path / "o2", [], LIMITS)
    (tmp_path / "n.zip").write_bytes(b"<html>not a zip</html>")
    with pytest.raises(UnsafeArchive, match="not a readable zip"):
        archive.extract(tmp_path / "n.zip", tmp_path / "o3", [], LIMITS)


def test_sizes_must_match_the_registry(tmp_path):
    entries = {"model.pkl": b"x" * 10}
    zip_path = make_zip(tmp_path / "a.zip", entries)
    with pytest.raises(SizeMismatch, match="fileSize says 11"):
        archive.extract(zip_path, tmp_path / "o1", [Asset("model.pkl", 11, "", "")], LIMITS)
    with pytest.raises(SizeMismatch, match="not in the zip"):
        archive.extract(zip_path, tmp_path / "o2", [Asset("other.pkl", 1, "", "")], LIMITS)
    two = make_zip(tmp_path / "two.zip", {"model.pkl": b"x" * 10, "extra.bin": b"y"})
    with pytest.raises(SizeMismatch, match="does not list"):
        archive.extract(two, tmp_path / "o3", [Asset("model.pkl", 10, "", "")], LIMITS)


def test_a_lying_header_cannot_write_more_than_it_declares(tmp_path):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as z:
        z.writestr("f", b"a" * 100)
    data = bytearray(buffer.getvalue())
    # patch the central directory's uncompressed size (offset 24 of the entry) to 10
    central = data.rfind(b"PK\x01\x02")
    data[central + 24: central + 28] = (10).to_bytes(4, "little")
    (tmp_path / "l.zip").write_bytes(bytes(data))
    with pytest.raises((ArchiveTooLarge, UnsafeArchive)):
        archive.extract(tmp_path / "l.zip", tmp_path / "out", [], LIMITS)


@pytest.mark.parametrize("case", sorted(malformed_archives()))
def test_what_the_zip_module_cannot_read_safely_is_an_unsafe_archive(tmp_path, case):
    """Duplicates, file/folder clashes, long names, encryption, deflate64, broken streams, CRC."""
    data, _settings, reason = malformed_archives()[case]
    (tmp_path / "a.zip").write_bytes(data)
    with pytest.raises(UnsafeArchive, match=reason):
        archive.extract(tmp_path / "a.zip", tmp_path / "out", [], LIMITS)
