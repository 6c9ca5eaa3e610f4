"""Serving one asset's bytes: `experiment/asset/get-asset` and presigned links, with Range.

An asset is a member of its version's stored zip, streamed out decompressed; a member stored
uncompressed is a plain byte range of that file (stored.py), handed to the kernel with sendfile
on werkzeug's socket unless a fault rule has to alter the body. A single
`Range: bytes=N-`, `bytes=N-M` or `bytes=-K` gets 206 with Content-Range (the sidecar resumes
a cut download with it; the SDK's presigned path fetches parts); anything past the end is 416;
several ranges are ignored (200, the whole asset), as RFC 9110 allows.

Presigned mode (`--presigned-downloads`, or PUT /-/presigned {"enabled": true}) stands in for
Comet's direct S3 download: download-instructions then answer `s3DownloadEnabled: true` and give
each asset an `s3Link` under /presigned/<assetId>?expires=...&signature=... (HMAC-SHA256 of
assetId and expiry with the registry's key, valid an hour). Such links need no Authorization,
as S3's do not; a bad or expired signature is 403. They are counted and faulted like the rest.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
import zipfile

from flask import Blueprint, Response, g, request
from werkzeug.wsgi import FileWrapper

from .store import CHUNK
from .stored import StoredMember, stored_member
from .web import BINARY, ApiError, arg, state

bp = Blueprint("assets", __name__)
presigned_bp = Blueprint("presigned", __name__)
PRESIGNED_PREFIX = "/presigned"
LINK_SECONDS = 3600
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def presigned_link(root: str, asset_id: str) -> str:
    """A link to one asset that works without the key for an hour."""
    expires = int(time.time()) + LINK_SECONDS
    return (f"{root}{PRESIGNED_PREFIX}/{asset_id}?expires={expires}"
            f"&signature={_signature(asset_id, expires)}")


def _signature(asset_id: str, expires: int) -> str:
    message = f"{asset_id}:{expires}".encode()
    return hmac.new(state().api_key.encode(), message, hashlib.sha256).hexdigest()


@bp.get("/experiment/asset/get-asset")
def get_asset():
    """One asset's bytes, streamed out of its version's zip."""
    version, asset = state().store.asset(arg("assetId"))
    key = arg("experimentKey", False)
    if key is not None and key != version["experimentKey"]:
        raise ApiError(404, f"Asset {asset['assetId']!r} not found")
    return _serve(version, asset)


@presigned_bp.get("/<asset_id>")
def presigned(asset_id: str):
    """One asset's bytes through a presigned link."""
    expires = request.args.get("expires", "")
    given = request.args.get("signature", "")
    if (not (expires.isascii() and expires.isdigit() and len(expires) <= 12)  # "²" is a digit
            or int(expires) < time.time()
            or not hmac.compare_digest(given.encode(),
                                       _signature(asset_id, int(expires)).encode())):
        raise ApiError(403, "Request has expired or its signature does not match")
    version, asset = state().store.asset(asset_id)
    return _serve(version, asset)


def _serve(version: dict, asset: dict) -> Response:
    if asset.get("member") is None:
        raise ApiError(404, f"Asset {asset['assetId']!r} has no bytes in this registry")
    path = state().store.zip_path(version["registryModelItemId"])
    try:
        archive = zipfile.ZipFile(path)
        info = archive.infolist()[asset["member"]]
        body = stored_member(path, info) or archive.open(info)
    except (OSError, zipfile.BadZipFile, IndexError, NotImplementedError, RuntimeError) as exc:
        raise ApiError(404, f"Asset {asset['assetId']!r} cannot be read: {exc}") from None

    def close() -> None:
        body.close()
        archive.close()

    size = info.file_size
    wanted = _range(request.headers.get("Range"), size)
    first, last = wanted or (0, size - 1)
    if wanted is not None and first >= size:
        close()
        raise ApiError(416, "Range Not Satisfiable", {"Content-Range": f"bytes */{size}"})
    body.seek(first)
    response = stream(_body(body, last - first + 1), last - first + 1, close)
    if wanted is not None:
        response.status_code = 206
        response.headers["Content-Range"] = f"bytes {first}-{last}/{size}"
    return response


def _body(source, length: int):
    """The answer's bytes: sent by the kernel (sendfile) when nothing has to see them."""
    sock = request.environ.get("werkzeug.socket")
    rule = g.get("fault")
    if isinstance(source, StoredMember) and sock is not None and not (rule and rule.alters_body):
        return source.sent_to(sock, length)
    return FileWrapper(_Limited(source, length), CHUNK)


def _range(header: str | None, size: int) -> tuple[int, int] | None:
    """(first, last) of a single byte range, or None for no range (or several)."""
    match = _RANGE.match(header or "")
    if not match or match.groups() == ("", ""):
        return None
    start, end = match.groups()
    if not start:
        return max(size - int(end), 0), size - 1
    return int(start), min(int(end), size - 1) if end else size - 1


class _Limited:
    """A reader that ends after `left` bytes of another."""

    def __init__(self, source, left: int):
        self.source, self.left = source, left

    def read(self, size: int = -1) -> bytes:
        """Up to size bytes, never past the limit."""
        if self.left <= 0:
            return b""
        chunk = self.source.read(self.left if size < 0 else min(size, self.left))
        self.left -= len(chunk)
        return chunk

    def close(self) -> None:
        """Close the source."""
        self.source.close()


def stream(body, length: int, close) -> Response:
    """A binary answer of known length that closes its source when sent."""
    response = Response(body, content_type=BINARY, direct_passthrough=True)
    response.headers["Content-Type"] = BINARY
    response.content_length = length
    response.call_on_close(close)
    return response
