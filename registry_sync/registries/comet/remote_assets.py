"""Remote assets (`remote: true`, an s3:// or gs:// link), read as comet_ml's Model.download does.

Comet lists a remote asset with its URI as `link` and a `metadata` JSON string that the SDK
reads for four keys (comet_ml/cloud_storage_utils.py): `synced` (Comet listed the object in the
bucket), `error_message` (why syncing failed), `file_size` and `version_id` (the S3 VersionId or
the GCS generation the asset was logged at). As the SDK does: an asset that is not synced and
carries a sync error is refused with that error; the object is fetched at its version when one is
given. Unlike the SDK, which skips other schemes with a warning and downloads the rest, a version
with any other URI is refused naming the asset: a model missing a file is no model to serve.

Before the first byte each object is asked for its size (HEAD): it must equal the metadata's
`file_size` when there is one, and it counts against the caps and the free-disk check like a
registry asset. Its bytes stream into the asset's part file (SHA-256 on the way); a cut resumes
from the bytes on disk with a range pinned to the object's version (or ETag), a changed object
restarts the asset. Denied, missing or failing stores are RemoteStoreError: the pass fails, the
previous snapshot keeps serving, and the next pass tries again.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ...errors import CometUnavailable, RemoteAssetRefused, RemoteStoreError, SizeMismatch
from ...store.chunk_pipeline import PartFile
from ...store.download_tally import AssetTally
from ...store.transfer import Retryable
from ..remote.object_stores import ObjectStore, ObjectStores, PinChanged, RemoteObject, Stat
from .client import CometClient

SYNCED, SYNC_ERROR, FILE_SIZE, VERSION_ID = "synced", "error_message", "file_size", "version_id"
SCHEMES = ("s3", "gs")
MAX_METADATA_CHARS = 64 * 1024
_URI = re.compile(r"^(?P<scheme>[a-z0-9]+)://(?P<bucket>[a-z0-9][a-z0-9._-]{1,221}[a-z0-9])/"
                  r"(?P<key>[^\x00-\x1f\x7f]{1,1024})$")
_VERSION = re.compile(r"^[\x21-\x7e]{1,1024}$")


@dataclass(frozen=True)
class RemoteAsset:
    """Where a remote asset's bytes are, the size its metadata gives, and the store to ask."""

    object: RemoteObject
    metadata_size: int | None
    store: ObjectStore | None = field(default=None, compare=False)
    stat: Stat | None = None


def parse(raw: Mapping[str, Any], file_name: str, what: str) -> RemoteAsset:
    """The remote asset an instructions entry describes; RemoteAssetRefused naming it if none."""
    named = f"remote asset {file_name!r} of {what}"
    link = raw.get("link")
    metadata = _metadata(raw.get("metadata"), named)
    if metadata.get(SYNCED) is False and metadata.get(SYNC_ERROR) is not None:
        raise RemoteAssetRefused(f"{named} failed to sync in Comet: "
                                 f"{str(metadata[SYNC_ERROR])[:200]}")
    match = _URI.match(link) if isinstance(link, str) else None
    if match is None or match["scheme"] not in SCHEMES:
        scheme = str(link or "").partition("://")[0][:20]
        has = f"has a {scheme}:// link" if scheme else "has no usable link"
        raise RemoteAssetRefused(f"{named} {has}: only s3:// and gs:// remote assets can be "
                                 "fetched (as comet_ml's Model.download does)")
    size, version = metadata.get(FILE_SIZE), metadata.get(VERSION_ID)
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 0):
        raise RemoteAssetRefused(f"{named}: metadata {FILE_SIZE} is not a byte count")
    if version is not None:
        version = str(version)
        if not _VERSION.match(version):
            raise RemoteAssetRefused(f"{named}: metadata {VERSION_ID} is malformed")
    return RemoteAsset(RemoteObject(match["scheme"], match["bucket"], match["key"], version),
                       size)


def _metadata(value: Any, named: str) -> dict[str, Any]:
    """The asset's metadata: null, or a JSON object encoded as a string (or given as one)."""
    if value is None:
        return {}
    if isinstance(value, str):
        if len(value) > MAX_METADATA_CHARS:
            raise RemoteAssetRefused(f"{named}: metadata over {MAX_METADATA_CHARS} characters")
        try:
            value = json.loads(value)
        except ValueError:
            raise RemoteAssetRefused(f"{named}: metadata is not JSON") from None
    if not isinstance(value, dict):
        raise RemoteAssetRefused(f"{named}: metadata is not a JSON object")
    return value


def resolve(asset: RemoteAsset, stores: ObjectStores, file_name: str, what: str) -> RemoteAsset:
    """Ask the object's store for its size and version, before any byte; check the metadata's."""
    store = stores.of(asset.object.scheme, f"remote asset {file_name!r} of {what}")
    stat = store.stat(asset.object, f"remote asset {file_name!r} of {what}")
    if asset.metadata_size is not None and stat.size != asset.metadata_size:
        raise SizeMismatch(f"remote asset {file_name!r} of {what} is {stat.size} bytes in "
                           f"{asset.object.uri}, its metadata's file_size says "
                           f"{asset.metadata_size}")
    return RemoteAsset(asset.object, asset.metadata_size, store, stat)


def fetch(client: CometClient, asset: RemoteAsset, size: int, part: PartFile,
          tally: AssetTally, what: str) -> None:
    """The object's bytes into the part, with the client's retries and backoff."""
    try:
        client.retrying(_attempt, client, asset, size, part, tally, what)
    except CometUnavailable as exc:  # the registry's words would name the wrong server
        raise RemoteStoreError(f"{what} ({asset.object.uri}) failed on every attempt: "
                               f"{exc.__cause__}") from exc


def _attempt(client: CometClient, asset: RemoteAsset, size: int, part: PartFile,
             tally: AssetTally, what: str) -> None:
    tally.streaming()
    fetch_once(asset, part, size, what, client.download_deadline(size - part.size),
               client.clock, lambda _: tally(part.size))


def fetch_once(asset: RemoteAsset, part: PartFile, size: int, what: str, deadline: float,
               clock: Callable[[], float], on_chunk: Callable[[int], None]) -> None:
    """One attempt: the object's bytes after those already in the part (Retryable on a cut)."""
    assert asset.store is not None and asset.stat is not None, "fetch before resolve"
    if part.size == size and size > 0:
        return
    start = part.size
    sink = _Receiver(part, size - start, what, deadline, clock, on_chunk)
    try:
        asset.store.download(asset.object, asset.stat, start, sink, what)
    except PinChanged as exc:
        part.restart()  # the object changed since the bytes on disk: they are worth nothing
        raise Retryable(f"{what} changed in its store since the first attempt") from exc
    if part.size != size:
        raise Retryable(f"{what} cut short: {part.size} of {size} bytes")


class _Receiver:
    """A file-like sink for a store's client: each piece into the part file's buffers, bounded."""

    def __init__(self, part: PartFile, limit: int, what: str, deadline: float,
                 clock: Callable[[], float], on_chunk: Callable[[int], None]):
        self.part, self.limit, self.what = part, limit, what
        self.deadline, self.clock, self.on_chunk = deadline, clock, on_chunk
        self.received = 0

    def write(self, data: bytes | bytearray | memoryview) -> int:
        """Append the piece; SizeMismatch past the announced size, Retryable past the deadline."""
        view = memoryview(data).cast("B")
        if self.received + len(view) > self.limit:
            raise SizeMismatch(f"{self.what} is longer than the {self.limit} bytes announced")
        while view:
            buffer = self.part.buffer()
            size = min(len(buffer), len(view))
            buffer[:size] = view[:size]
            self.part.commit(size)
            view = view[size:]
        self.received += len(data)
        self.on_chunk(len(data))
        if self.clock() > self.deadline:
            raise Retryable(f"{self.what} too slow: {self.received} bytes by the deadline "
                            "(COMET_MIN_DOWNLOAD_RATE)")
        return len(data)
