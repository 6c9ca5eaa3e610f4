"""Per-asset download, as comet_ml's Model.download does it: the instructions, then each asset.

`registry-model/item/download-instructions` lists a version's assets. Each is fetched on its own
from `experiment/asset/get-asset` (the URL built from assetId and experimentKey on the configured
server, so the key never goes anywhere else), or from its presigned `s3Link` when
`s3DownloadEnabled` (sent without the key). Refused before the first byte: an asset name that
archive.safe_member_path refuses, a duplicate, a file beside a folder of the same name, a name
part over 255 bytes; more assets or bytes than the caps. A remote asset (`remote: true`) is
fetched from S3 or GCS by remote_assets.py (its size asked of the store before the first byte,
so the caps count it); any other URI is RemoteAssetRefused naming it. Each asset streams into a
part file under the work folder, its SHA-256 computed as it arrives; a cut resumes it with
`Range` when the server answers 206, else restarts that asset alone; it must end at the
instructions' fileSize (one byte more is refused at once). Only when every asset is complete are
they moved into the model folder.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from model_contract.manifest import FileEntry

from ...config import ArchiveLimits
from ...errors import ArchiveTooLarge, BadResponse, SizeMismatch, UnsafeArchive
from ...store.archive import safe_member_path
from ...store.chunk_pipeline import ChunkPipeline, PartFile
from ...store.download_tally import Abandoned, AssetTally, Tally
from ...store.transfer import CHUNK_SIZE, content_length, receive
from ..remote.object_stores import ObjectStores, S3Settings
from ..values import ModelVersion
from . import remote_assets
from .client import CometClient

GET_ASSET = "experiment/asset/get-asset"
MAX_NAME_PART_BYTES = 255
BUFFERS = 4  # of CHUNK_SIZE per asset being received: one filling, the others being hashed
# One asset's pipeline already keeps both cores busy (receive and write on one, SHA-256 on the
# other): two at a time measured no faster (77% of curl against 76%, 4 alternating rounds).
CONCURRENT_ASSETS = 1
ProgressFn = Callable[[int, int | None], None]


@dataclass(frozen=True)
class AssetSource:
    """One asset to fetch: its safe relative path, announced size and where it comes from."""

    path: str
    size: int
    asset_id: str
    experiment_key: str
    presigned_link: str | None = None
    remote: remote_assets.RemoteAsset | None = None  # in S3 or GCS, not in the registry
    listed_size: int | None = None  # the registry's fileSize, when size came from elsewhere


@dataclass(frozen=True)
class Plan:
    """Every asset of one version, checked, in the order the registry listed them."""

    model: str
    version: str
    assets: tuple[AssetSource, ...]

    @property
    def total_size(self) -> int:
        """Bytes of all the assets together, as announced."""
        return sum(a.size for a in self.assets)


def plan(client: CometClient, name: str, version: ModelVersion, limits: ArchiveLimits,
         stores: ObjectStores | None = None) -> Plan:
    """Ask the instructions and check them; raises InstructionsMissing when there are none.

    Remote assets are asked of their stores (made from the client's timeouts unless given).
    """
    body = client.download_instructions(name, version.version)
    listed = body.get("versions")
    if (not isinstance(listed, list) or len(listed) != 1 or not isinstance(listed[0], dict)
            or listed[0].get("version") != version.version):
        raise BadResponse(f"download-instructions of {name} {version.version} do not describe "
                          "that one version")
    presigned = body.get("s3DownloadEnabled") is True
    raw_assets = listed[0].get("assets") or []
    if not isinstance(raw_assets, list):
        raise BadResponse(f"download-instructions of {name} {version.version}: assets not a list")
    if len(raw_assets) > limits.max_entries:
        raise ArchiveTooLarge(f"{name} {version.version} has {len(raw_assets)} assets (cap "
                              f"MAX_ZIP_ENTRIES={limits.max_entries})")
    found = Plan(name, version.version,
                 tuple(_source(raw, name, version, presigned) for raw in raw_assets))
    _check_names(found)
    if any(a.remote for a in found.assets):
        stores = stores or ObjectStores(*client.download_timeouts(), S3Settings(
            client.settings.s3_endpoint, client.settings.s3_region))
        found = Plan(name, version.version, tuple(_resolved(a, found, stores)
                                                  for a in found.assets))
    if found.total_size > limits.max_bytes:
        raise ArchiveTooLarge(f"{name} {version.version} is {found.total_size} bytes (cap "
                              f"MAX_MODEL_BYTES={limits.max_bytes})")
    _check_against_details(found, version)
    return found


def _source(raw: Any, name: str, version: ModelVersion, presigned: bool) -> AssetSource:
    what = f"{name} {version.version}"
    if not isinstance(raw, Mapping) or not isinstance(raw.get("fileName"), str):
        raise BadResponse(f"download-instructions of {what}: an asset without a fileName")
    file_name = raw["fileName"]
    if raw.get("remote") is True:
        remote = remote_assets.parse(raw, file_name, what)
        listed = raw.get("fileSize")
        return AssetSource(_safe_path(file_name), remote.metadata_size or 0, "", "",
                           remote=remote, listed_size=listed if isinstance(listed, int) else 0)
    size = raw.get("fileSize")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise BadResponse(f"asset {file_name!r} of {what} has no valid fileSize")
    key = str(raw.get("experimentKey") or version.experiment_key)
    if version.experiment_key and key != version.experiment_key:
        raise BadResponse(f"asset {file_name!r} of {what} belongs to experiment {key}, not "
                          f"{version.experiment_key}: refused")
    link = raw.get("s3Link") if presigned else None
    usable = isinstance(link, str) and link.startswith(("https://", "http://"))
    return AssetSource(_safe_path(file_name), size, str(raw.get("assetId") or ""), key,
                       link if usable else None)


def _safe_path(name: str) -> str:
    try:
        path = safe_member_path(name)
    except UnsafeArchive as exc:
        raise UnsafeArchive(str(exc).replace("zip entry", "asset", 1)) from None
    if any(len(part.encode()) > MAX_NAME_PART_BYTES for part in PurePosixPath(path).parts):
        raise UnsafeArchive(f"asset {name[:80]!r}... has a name part over "
                            f"{MAX_NAME_PART_BYTES} bytes")
    return path


def _resolved(asset: AssetSource, found: Plan, stores: ObjectStores) -> AssetSource:
    """A remote asset with its size and version as its store gives them; others unchanged."""
    if asset.remote is None:
        return asset
    remote = remote_assets.resolve(asset.remote, stores, asset.path,
                                   f"{found.model} {found.version}")
    assert remote.stat is not None
    return AssetSource(asset.path, remote.stat.size, "", "", remote=remote,
                       listed_size=asset.listed_size)


def _check_names(found: Plan) -> None:
    paths = [a.path for a in found.assets]
    if len(set(paths)) != len(paths):
        twice = sorted({p for p in paths if paths.count(p) > 1})
        raise UnsafeArchive(f"assets of {found.model} {found.version} repeat names: {twice[:5]}")
    files = set(paths)
    for path in paths:
        for parent in PurePosixPath(path).parents:
            if parent.as_posix() in files:
                raise UnsafeArchive(f"asset {path!r} lies under {parent.as_posix()!r}, which is "
                                    "a file too")


def _check_against_details(found: Plan, version: ModelVersion) -> None:
    """The instructions must list the assets the version's details listed, sizes included."""
    if not version.assets:
        return
    details = {a.file_name: a.file_size for a in version.assets}
    given = {a.path: a.size if a.listed_size is None else a.listed_size for a in found.assets}
    if details != given:
        raise BadResponse(f"download-instructions of {found.model} {found.version} disagree "
                          "with its details on assets or sizes: refused")


def fetch(client: CometClient, found: Plan, work: Path, target: Path,
          progress: ProgressFn | None = None) -> tuple[FileEntry, ...]:
    """Download every asset into work, then move them into target; describe each file.

    CONCURRENT_ASSETS at a time, each on its own connection and pipeline. Requests go out in
    the plan's order and the first failure abandons the rest (download_tally.py).
    """
    parts_dir = work / f"{found.model}.parts"
    parts_dir.mkdir(parents=True, exist_ok=True)
    tally = Tally(len(found.assets), found.total_size, progress)
    if CONCURRENT_ASSETS <= 1:
        parts = [_fetch_asset(client, found, asset, parts_dir / str(index),
                              tally.for_asset(index))
                 for index, asset in enumerate(found.assets)]
    else:
        parts = _fetch_side_by_side(client, found, parts_dir, tally)
    entries = []
    for asset, (part, digest) in zip(found.assets, parts, strict=True):
        destination = target / asset.path
        destination.parent.mkdir(parents=True, exist_ok=True)
        os.replace(part.path, destination)
        entries.append(FileEntry(path=asset.path, size=part.size, sha256=digest))
    parts_dir.rmdir()
    return tuple(entries)


def _fetch_side_by_side(client: CometClient, found: Plan, parts_dir: Path,
                        tally: Tally) -> list[tuple[PartFile, str]]:
    """CONCURRENT_ASSETS assets at a time on worker threads; the first failure ends them all."""
    with ThreadPoolExecutor(CONCURRENT_ASSETS, thread_name_prefix="asset") as pool:
        try:
            futures = [pool.submit(_fetch_asset, client, found, asset, parts_dir / str(index),
                                   tally.for_asset(index))
                       for index, asset in enumerate(found.assets)]
            return _gather(futures, tally)
        except BaseException:
            tally.abandon.set()  # a stop or an error here must not wait for whole assets
            raise


def _gather(futures: list[Future], tally: Tally) -> list[tuple[PartFile, str]]:
    """Every asset's part and digest; else the first asset's error (in the plan's order)."""
    _, pending = wait(futures, return_when=FIRST_EXCEPTION)
    if pending:
        tally.abandon.set()
        for future in pending:
            future.cancel()
        wait(pending)
    errors = [e for f in futures if not f.cancelled() and (e := f.exception()) is not None]
    for error in errors:
        if not isinstance(error, Abandoned):
            raise error
    return [f.result() for f in futures]


def _fetch_asset(client: CometClient, found: Plan, asset: AssetSource, path: Path,
                 tally: AssetTally) -> tuple[PartFile, str]:
    """One asset into its part file, with the client's retries: the part and its digest."""
    try:
        tally.wait_turn()
        pipeline = ChunkPipeline(BUFFERS, CHUNK_SIZE)
        try:
            part = PartFile(path, pipeline)
            try:
                if asset.remote is None:
                    client.retrying(_fetch_once, client, found, asset, part, tally)
                else:
                    remote_assets.fetch(client, asset.remote, asset.size, part, tally,
                                        f"remote asset {asset.path!r} of {found.model} "
                                        f"{found.version}")
            finally:
                digest = part.close()
        finally:
            pipeline.close()
    except BaseException:
        tally.failed()
        raise
    tally.streaming()  # an empty asset or one already whole never streamed
    return part, digest


def _fetch_once(client: CometClient, found: Plan, asset: AssetSource, part: PartFile,
                tally: AssetTally) -> None:
    """One attempt at one asset, resuming what an earlier attempt received when possible."""
    if part.size == asset.size and asset.size > 0:
        return
    what = f"asset {asset.path!r} of {found.model} {found.version}"
    headers = {"Accept-Encoding": "identity"}
    if part.size:
        headers["Range"] = f"bytes={part.size}-"
    response = _request(client, asset, headers, what)
    if not (part.size and response.status_code == 206 and _range_start(response) == part.size):
        part.restart()
    remaining = asset.size - part.size
    length = content_length(response)
    if length is not None and length != remaining:
        response.close()
        raise SizeMismatch(f"{what} is {part.size + length} bytes as served, the registry's "
                           f"fileSize says {asset.size}")

    tally.streaming()
    receive(response, part, what=what, deadline=client.download_deadline(remaining),
            clock=client.clock, limit=remaining, on_chunk=lambda _: tally(part.size))
    if part.size != asset.size:
        raise SizeMismatch(f"{what} ended at {part.size} bytes, the registry's fileSize says "
                           f"{asset.size}")


def _request(client: CometClient, asset: AssetSource, headers: dict[str, str], what: str):
    missing = BadResponse(f"{what} is listed but the registry cannot find it (HTTP 404)")
    if asset.presigned_link:
        return client.attempt("GET", asset.presigned_link, missing, endpoint="presigned-link",
                              authenticate=False, stream=True, extra_headers=headers,
                              timeout=client.download_timeouts())
    # allow301=False, as the SDK sends it: the bytes themselves, never a redirect elsewhere
    params = {"assetId": asset.asset_id, "experimentKey": asset.experiment_key,
              "allow301": False}
    return client.attempt("GET", GET_ASSET, missing, params=params, stream=True,
                          extra_headers=headers, timeout=client.download_timeouts())


def _range_start(response: Any) -> int | None:
    """The first byte a 206 answer holds, from `Content-Range: bytes N-M/T`."""
    value = response.headers.get("Content-Range", "")
    unit, _, rest = value.partition(" ")
    start = rest.partition("-")[0]
    return int(start) if unit == "bytes" and start.isdigit() else None
