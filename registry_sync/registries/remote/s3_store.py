"""S3 objects through the MinIO client (the [s3] extra), with AWS's default credential chain.

Not boto3, which comet_ml uses: botocore requires python-dateutil < 3 and the kubernetes client
of [sidecar] requires >= 3, so the two cannot share the sidecar image. The MinIO client follows
the same chain boto3 does: AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN, the
shared credentials file (AWS_SHARED_CREDENTIALS_FILE, AWS_PROFILE), then IRSA (AWS_ROLE_ARN with
AWS_WEB_IDENTITY_TOKEN_FILE, through STS), EKS Pod Identity / ECS container credentials, and
the EC2 instance role. The endpoint and region are boto3's own settings, AWS_ENDPOINT_URL (or
AWS_ENDPOINT_URL_S3) and AWS_REGION (or AWS_DEFAULT_REGION), read in config.py.

A HEAD gives the size, VersionId and ETag; each attempt is one GET pinned to the version asked
for (metadata's version_id) or else to the VersionId / ETag the HEAD saw, from the first byte
not yet on disk. The body is read as it arrives, so a dripping store cannot keep the download's
deadline from being checked.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import urllib3
from minio import Minio
from minio.credentials.providers import (
    AWSConfigProvider,
    ChainedProvider,
    EnvAWSProvider,
    IamAwsProvider,
)
from minio.error import InvalidResponseError, MinioException, S3Error, ServerError

from ...errors import RemoteStoreError
from ...store.transfer import CHUNK_SIZE
from .object_stores import (
    ErrorMap,
    PinChanged,
    RemoteObject,
    S3Settings,
    Sink,
    Stat,
    refused,
    retry,
)

AWS_ENDPOINT = "https://s3.amazonaws.com"


class S3Store:
    """One MinIO client, AWS's credential chain, no retries of its own."""

    def __init__(self, connect_timeout: float, read_timeout: float, settings: S3Settings):
        endpoint = urlsplit(settings.endpoint or AWS_ENDPOINT)
        pool = urllib3.PoolManager(timeout=urllib3.Timeout(connect=connect_timeout,
                                                           read=read_timeout),
                                   retries=False)
        self.client = Minio(endpoint.netloc, secure=endpoint.scheme == "https",
                            region=settings.region or None, http_client=pool,
                            credentials=ChainedProvider([EnvAWSProvider(), AWSConfigProvider(),
                                                         IamAwsProvider()]))

    def stat(self, obj: RemoteObject, what: str) -> Stat:
        """HEAD the object (at its version, if one is asked for)."""
        with _mapped(obj, what):
            found = self.client.stat_object(obj.bucket, obj.key, version_id=obj.version)
        return Stat(int(found.size or 0), found.version_id or obj.version, found.etag)

    def download(self, obj: RemoteObject, stat: Stat, start: int, sink: Sink, what: str) -> None:
        """GET the object's bytes from `start` into sink."""
        version = stat.version if stat.version not in (None, "null") else None
        headers: dict[str, str | list[str] | tuple[str]] = (
            {} if version or not stat.etag else {"If-Match": f'"{stat.etag}"'})
        with _mapped(obj, what):
            response = self.client.get_object(obj.bucket, obj.key, offset=start,
                                              version_id=version, request_headers=headers)
            try:
                if start and not str(response.headers.get("Content-Range", "")).startswith(
                        f"bytes {start}-"):
                    raise PinChanged("the store did not answer the range asked for")
                while chunk := response.read1(CHUNK_SIZE):
                    sink.write(chunk)
            finally:
                response.close()
                response.release_conn()


class _mapped(ErrorMap):
    """Turns the MinIO client's and urllib3's errors into the sidecar's."""

    def translate(self, exc: BaseException) -> BaseException | None:
        """PinChanged on 412; RemoteStoreError when final; Retryable when worth retrying."""
        if isinstance(exc, S3Error | InvalidResponseError):
            status = exc.response.status if isinstance(exc, S3Error) else exc._code
            code = exc.code if isinstance(exc, S3Error) else ""
            if status == 412:
                return PinChanged(str(code))
            final = refused(self.what, self.obj, status, str(code or ""))
            return final or retry(self.what, f"S3 answered HTTP {status} {code}")
        if isinstance(exc, ServerError):
            return retry(self.what, f"S3 answered HTTP {exc.status_code}")
        if isinstance(exc, ValueError) and "credential" in str(exc).lower():
            return RemoteStoreError(f"{self.what} ({self.obj.uri}): no AWS credentials: give "
                                    "the sidecar a role (IRSA) or keys")
        if isinstance(exc, MinioException | urllib3.exceptions.HTTPError | OSError):
            return retry(self.what, f"S3 transfer failed: {type(exc).__name__}")
        return None
