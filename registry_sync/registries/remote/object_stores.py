"""The object stores remote assets live in: S3 through boto3, GCS through google-cloud-storage.

Each client is made on first use with the library's default credential chain, so what works for
the comet_ml SDK works here: environment keys, shared config files, IRSA / EKS Pod Identity and
instance roles for S3 (s3_store.py says why through the MinIO client, not boto3); Application
Default Credentials, Workload Identity and the metadata server for GCS. boto3's settings
`AWS_ENDPOINT_URL` and `AWS_REGION` (read in config.py) and google-cloud-storage's own
`STORAGE_EMULATOR_HOST` say where the stores are. Neither client retries here (one attempt each;
remote_assets retries with the registry's backoff) and both take the registry's timeouts:
COMET_TIMEOUT to connect, COMET_DOWNLOAD_TIMEOUT between bytes.

Errors become: RemoteStoreError (denied, missing, no credentials: the pass fails, retried later),
Retryable (a connection error, a timeout, 5xx, throttling, a cut body, a bad checksum) and
PinChanged (the object is not the version the first attempt saw).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from ...errors import RemoteAssetRefused, RemoteStoreError
from ...store.transfer import Retryable

EXTRA = {"s3": ("minio", "s3"), "gs": ("google-cloud-storage", "gcs")}
DENIED = {401, 403}


@dataclass(frozen=True)
class RemoteObject:
    """One object: its scheme (s3, gs), bucket, key and the version asked for, if any."""

    scheme: str
    bucket: str
    key: str
    version: str | None = None

    @property
    def uri(self) -> str:
        """The object as Comet links it."""
        return f"{self.scheme}://{self.bucket}/{self.key}"


@dataclass(frozen=True)
class S3Settings:
    """Where S3 is: AWS_ENDPOINT_URL (empty: AWS itself) and AWS_REGION (empty: asked)."""

    endpoint: str = ""
    region: str = ""


@dataclass(frozen=True)
class Stat:
    """What the store says of an object before any byte: its size and what pins its version."""

    size: int
    version: str | None  # S3 VersionId or GCS generation
    etag: str | None


class PinChanged(Exception):
    """The object no longer matches the version or ETag first seen (HTTP 412)."""


class Sink(Protocol):
    """Where an object's bytes go, piece by piece."""

    def write(self, data: bytes, /) -> int:
        """Take the next piece."""


class ObjectStore(Protocol):
    """What a remote asset needs of a store."""

    def stat(self, obj: RemoteObject, what: str) -> Stat:
        """The object's size and version, without its bytes."""

    def download(self, obj: RemoteObject, stat: Stat, start: int, sink: Sink, what: str) -> None:
        """The object's bytes from `start` on, at the version `stat` saw, into sink."""


class ObjectStores:
    """One client per scheme, made on first use (the libraries are optional extras)."""

    def __init__(self, connect_timeout: float, read_timeout: float,
                 s3: S3Settings = S3Settings()):
        self.timeouts, self.s3 = (connect_timeout, read_timeout), s3
        self._made: dict[str, ObjectStore] = {}
        self._lock = threading.Lock()

    def of(self, scheme: str, what: str) -> ObjectStore:
        """The store of a scheme; RemoteAssetRefused when its library is not installed."""
        with self._lock:
            if scheme not in self._made:
                self._made[scheme] = self._make(scheme, what)
            return self._made[scheme]

    def _make(self, scheme: str, what: str) -> ObjectStore:
        library, extra = EXTRA[scheme]
        try:
            if scheme == "s3":
                from .s3_store import S3Store
                return S3Store(*self.timeouts, self.s3)
            from .gcs_store import GcsStore
            return GcsStore(*self.timeouts)
        except ImportError:
            raise RemoteAssetRefused(
                f"{what} is in {scheme}://, which needs {library}: install "
                f"comet-registry-sync[{extra}] (the sidecar image has it)") from None


class ErrorMap:
    """A `with` block that turns a store client's errors into the sidecar's, naming the asset."""

    def __init__(self, obj: RemoteObject, what: str):
        self.obj, self.what = obj, what

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: Any, exc: Any, _tb: Any) -> Literal[False]:
        if exc is not None and (mapped := self.translate(exc)) is not None:
            raise mapped from exc
        return False

    def translate(self, exc: BaseException) -> BaseException | None:
        """The sidecar's error for a client's, or None to let it through."""
        raise NotImplementedError


def refused(what: str, obj: RemoteObject, status: Any, reason: str) -> RemoteStoreError | None:
    """The error of a store's HTTP status for an object, or None when worth retrying."""
    where = f"{what} ({obj.uri}{'' if obj.version is None else ' version ' + obj.version})"
    reason = "" if reason == str(status) else f" {reason}"
    if status in DENIED:
        return RemoteStoreError(f"{where}: the store denied access (HTTP {status}{reason}): "
                                "check the sidecar's cloud credentials and the bucket's policy")
    if status == 404:
        return RemoteStoreError(f"{where}: no such object in the store (HTTP 404{reason})")
    if isinstance(status, int) and 400 <= status < 500 and status not in (408, 429):
        return RemoteStoreError(f"{where}: the store refused the request (HTTP {status}"
                                f"{reason})")
    return None


def retry(what: str, detail: str) -> Retryable:
    """A failure of the store worth another attempt."""
    return Retryable(f"{what}: {detail}")
