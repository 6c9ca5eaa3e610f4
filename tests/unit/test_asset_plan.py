"""The per-asset download plan: every check made on the registry's instructions before a byte."""

from __future__ import annotations

import pytest

from registry_sync.config import ArchiveLimits
from registry_sync.errors import (
    ArchiveTooLarge,
    BadResponse,
    RemoteAssetRefused,
    UnsafeArchive,
)
from registry_sync.registries.comet import asset_download
from registry_sync.registries.values import Asset, ModelVersion

KEY = "a" * 32


class Instructions:
    """A client whose only call is download_instructions, answering what it was given."""

    def __init__(self, assets, s3=False, version="1.0.0"):
        self.body = {"s3DownloadEnabled": s3, "versions": [{"version": version,
                                                            "assets": assets}]}

    def download_instructions(self, name, version):
        return self.body


def asset(name, size=10, **extra):
    return {"fileName": name, "fileSize": size, "assetId": name, "experimentKey": KEY,
            "remote": False, **extra}


def version(*assets: Asset) -> ModelVersion:
    return ModelVersion("1.0.0", "item", "Production", (), (), KEY, 0, "", tuple(assets))


DEFAULT_LIMITS = ArchiveLimits()


def plan(assets, limits=DEFAULT_LIMITS, listed=(), **kwargs):
    return asset_download.plan(Instructions(assets, **kwargs), "m", version(*listed), limits)


def test_a_plain_version_becomes_one_source_per_asset_in_order():
    found = plan([asset("b.bin", 3), asset("dir/a.bin", 4)])
    assert [(a.path, a.size) for a in found.assets] == [("b.bin", 3), ("dir/a.bin", 4)]
    assert found.total_size == 7 and all(a.presigned_link is None for a in found.assets)


def test_presigned_links_are_used_only_when_enabled_and_http():
    found = plan([asset("a", s3Link="https://bucket/a?sig=1"), asset("b", s3Link="s3://x")],
                 s3=True)
    assert [a.presigned_link for a in found.assets] == ["https://bucket/a?sig=1", None]


@pytest.mark.parametrize(("listed", "error", "phrase"), [
    ([asset("x", remote=True, link="hdfs://cluster/x")], RemoteAssetRefused,
     "remote asset 'x' of m 1.0.0 has a hdfs:// link: only s3:// and gs://"),
    ([asset("x", remote=True, link="")], RemoteAssetRefused,
     "remote asset 'x' of m 1.0.0 has no usable link"),
    ([asset("x", remote=True, link="s3://b/x",
            metadata='{"synced": false, "error_message": "AccessDenied on ListObjects"}')],
     RemoteAssetRefused, "remote asset 'x' of m 1.0.0 failed to sync in Comet: AccessDenied"),
    ([asset("x", remote=True, link="s3://bkt/x", metadata="[1]")], RemoteAssetRefused,
     "remote asset 'x' of m 1.0.0: metadata is not a JSON object"),
    ([asset("x", remote=True, link="s3://bkt/x", metadata='{"file_size": -1}')],
     RemoteAssetRefused, "metadata file_size is not a byte count"),
    ([asset("x", remote=True, link="gs://bkt/x", metadata='{"version_id": "a b"}')],
     RemoteAssetRefused, "metadata version_id is malformed"),
    ([asset("../x")], UnsafeArchive, "asset '../x' climbs out"),
    ([asset("/etc/x")], UnsafeArchive, "absolute path"),
    ([asset("a"), asset("a")], UnsafeArchive, "repeat names"),
    ([asset("a"), asset("a/b")], UnsafeArchive, "which is a file too"),
    ([asset("x" * 256)], UnsafeArchive, "longer than the file system allows"),
    ([asset("a", -1)], BadResponse, "no valid fileSize"),
    ([asset("a", experimentKey="b" * 32)], BadResponse, "belongs to experiment"),
    ([{"fileSize": 1}], BadResponse, "without a fileName"),
])
def test_instructions_that_could_harm_or_mislead_are_refused(listed, error, phrase):
    with pytest.raises(error, match=phrase.replace("(", r"\(").replace(")", r"\)")):
        plan(listed)


def test_caps_on_count_and_total_size_apply_before_any_byte():
    with pytest.raises(ArchiveTooLarge, match="MAX_ZIP_ENTRIES=1"):
        plan([asset("a"), asset("b")], ArchiveLimits(max_entries=1))
    with pytest.raises(ArchiveTooLarge, match="MAX_MODEL_BYTES=15"):
        plan([asset("a"), asset("b")], ArchiveLimits(max_bytes=15))


def test_instructions_must_agree_with_the_details_and_the_version():
    with pytest.raises(BadResponse, match="disagree with its details"):
        plan([asset("a", 10)], listed=[Asset("a", 11, "a", KEY)])
    with pytest.raises(BadResponse, match="do not describe that one version"):
        plan([asset("a")], version="2.0.0")
