"""GCS objects through google-cloud-storage (the [gcs] extra), as comet_ml reaches them.

The blob's metadata gives the size and generation (at the metadata's version_id when given, as
the SDK's `get_blob(generation=)` does); each attempt downloads that generation with
`if_generation_match`, from the first byte not yet on disk. Whole downloads are checked against
the object's CRC32C by the library itself.
"""

from __future__ import annotations

import requests
import urllib3
from google.api_core import exceptions as api_errors
from google.auth import exceptions as auth_errors
from google.cloud import storage
from google.cloud.storage.exceptions import DataCorruption, InvalidResponse

from ...errors import RemoteAssetRefused, RemoteStoreError
from .object_stores import ErrorMap, PinChanged, RemoteObject, Sink, Stat, refused, retry

TRANSIENT = (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError,
             auth_errors.TransportError, InvalidResponse, urllib3.exceptions.HTTPError,
             OSError)


class GcsStore:
    """One storage.Client, made on first use with Application Default Credentials."""

    def __init__(self, connect_timeout: float, read_timeout: float):
        self.timeouts = (connect_timeout, read_timeout)
        self._client: storage.Client | None = None

    def _blob(self, obj: RemoteObject, generation: int | None) -> storage.Blob:
        if self._client is None:
            self._client = storage.Client()
        return self._client.bucket(obj.bucket).blob(obj.key, generation=generation)

    def stat(self, obj: RemoteObject, what: str) -> Stat:
        """The blob's metadata (at its version, if one is asked for)."""
        if obj.version is not None and not obj.version.isdigit():
            raise RemoteAssetRefused(f"{what}: version_id {obj.version[:40]!r} is not a GCS "
                                     "generation")
        with _mapped(obj, what):
            blob = self._blob(obj, int(obj.version) if obj.version else None)
            blob.reload(timeout=self.timeouts, retry=None)
        return Stat(int(blob.size or 0), str(blob.generation), blob.etag)

    def download(self, obj: RemoteObject, stat: Stat, start: int, sink: Sink, what: str) -> None:
        """The generation `stat` saw, from byte `start`, into sink."""
        generation = int(stat.version) if stat.version else None
        with _mapped(obj, what):
            blob = self._blob(obj, generation)
            blob.download_to_file(sink, client=self._client, start=start or None,
                                  raw_download=True, if_generation_match=generation,
                                  timeout=self.timeouts, retry=None,
                                  checksum=None if start else "auto")


class _mapped(ErrorMap):
    """Turns google's errors into the sidecar's."""

    def translate(self, exc: BaseException) -> BaseException | None:
        """PinChanged on 412 or bad checksum; RemoteStoreError when final; else Retryable."""
        if isinstance(exc, api_errors.PreconditionFailed | DataCorruption):
            return PinChanged(type(exc).__name__)
        if isinstance(exc, api_errors.GoogleAPICallError):
            final = refused(self.what, self.obj, exc.code, type(exc).__name__)
            return final or retry(self.what, f"GCS answered HTTP {exc.code}")
        if isinstance(exc, auth_errors.DefaultCredentialsError | auth_errors.RefreshError):
            return RemoteStoreError(f"{self.what} ({self.obj.uri}): no usable Google "
                                    f"credentials ({type(exc).__name__}): give the sidecar "
                                    "Workload Identity or GOOGLE_APPLICATION_CREDENTIALS")
        if isinstance(exc, TRANSIENT):
            return retry(self.what, f"GCS transfer failed: {type(exc).__name__}")
        return None
