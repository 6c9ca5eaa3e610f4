"""Peer file serving: a follower fetches a decided snapshot's files from a replica that has them.

Serving side (`find_file`): the ops server answers `GET /-/files/<snapshot>/<model>/<path>` with
the shared token, and only for a file the named snapshot's manifest lists; any other path is
404, so nothing outside snapshots/ can be read through it.

Fetching side (`PeerClient.fetch_model`): each file is streamed into the staging folder while
its SHA-256 is computed, read no further than the decided size, and kept only if size and hash
equal the decided manifest's. A peer that does not answer is PeerUnavailable; one that sends
different bytes is PeerRefused. Either way the caller installs from Comet instead: a peer can
save a download, never change what is installed.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path

import requests

from model_contract import layout, logs, manifest
from model_contract.manifest import FileEntry, ManifestError, ModelEntry

log = logs.get(__name__)

FILES_PREFIX = "/-/files/"
_CHUNK = 256 * 1024


class PeerUnavailable(Exception):
    """No usable answer from the peer (unreachable, timed out, refused, not found)."""


class PeerRefused(Exception):
    """The peer sent bytes that differ from the decided manifest: it is not trusted."""


def find_file(root: Path, url_path: str) -> Path | None:
    """The file a /-/files/ URL path names, if a complete snapshot's manifest lists it."""
    parts = url_path.removeprefix(FILES_PREFIX).split("/", 2)
    if len(parts) != 3 or not all(parts):
        return None
    snapshot_id, model, relative = parts
    try:
        folder = layout.snapshot_path(root, snapshot_id)
        listed = manifest.read(folder).model(model)
    except (ValueError, ManifestError):
        return None
    if listed is None or not any(f.path == relative for f in listed.files):
        return None
    return folder / model / relative


class PeerClient:
    """Fetches decided files from peers with the shared token."""

    def __init__(self, token: Callable[[], str], timeout: float = 10.0,
                 session: requests.Session | None = None):
        self._token, self._timeout = token, timeout  # token(): re-read per use (rotation)
        self._session = session or requests.Session()
        self._session.trust_env = False  # pod-to-pod traffic never goes through a proxy

    def fetch_model(self, peer_url: str, snapshot_id: str, entry: ModelEntry, target: Path,
                    on_bytes: Callable[[int], None] = lambda n: None) -> ModelEntry:
        """Fetch every file of a decided model into target; the decided entry if all match."""
        for item in entry.files:
            self._fetch_file(f"{peer_url}{FILES_PREFIX}{snapshot_id}/{entry.name}/{item.path}",
                             item, target / item.path, on_bytes)
        log.info("model_fetched_from_peer", model=entry.name, version=entry.version,
                 peer=peer_url, files=len(entry.files))
        return entry

    def _fetch_file(self, url: str, item: FileEntry, path: Path,
                    on_bytes: Callable[[int], None]) -> None:
        try:
            with self._session.get(url, stream=True, timeout=self._timeout,
                                   headers={"Authorization": f"Bearer {self._token()}"}) as answer:
                if answer.status_code != 200:
                    raise PeerUnavailable(f"{item.path}: peer answered HTTP {answer.status_code}")
                digest, size = self._save(answer, path, item.size, on_bytes)
        except requests.RequestException as exc:
            raise PeerUnavailable(f"{item.path}: {type(exc).__name__}") from None
        if size != item.size or digest != item.sha256:
            path.unlink(missing_ok=True)
            raise PeerRefused(f"{item.path}: {size} bytes with SHA-256 {digest[:12]}..., the "
                              f"decided manifest says {item.size} bytes, {item.sha256[:12]}...")

    @staticmethod
    def _save(answer: requests.Response, path: Path, limit: int,
              on_bytes: Callable[[int], None]) -> tuple[str, int]:
        """Stream to path, stopping one byte past the decided size; (sha256, bytes read)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        digest, size = hashlib.sha256(), 0
        with open(path, "wb") as handle:
            for chunk in answer.iter_content(_CHUNK):
                chunk = chunk[: limit + 1 - size]
                handle.write(chunk)
                digest.update(chunk)
                size += len(chunk)
                on_bytes(len(chunk))
                if size > limit:
                    break
            handle.flush()
            os.fsync(handle.fileno())
        return digest.hexdigest(), size
