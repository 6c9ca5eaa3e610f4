"""The exceptions of registry-sync, one small tree; HTTP codes are mapped to it only in comet.py.

RegistrySyncError
├── ConfigError            a setting is missing or malformed (the message names it)
├── CometError             the registry answered something we cannot use
│   ├── Unauthorized       the API key is wrong, revoked or lacks access
│   ├── WorkspaceNotFound  the workspace does not exist
│   ├── ModelNotFound      the registry model does not exist in the workspace
│   ├── VersionNotFound    the version does not exist
│   ├── PaymentRequired    HTTP 402: a limit of the Comet plan was reached
│   ├── InstructionsMissing  no download-instructions (404): fall back to the zip
│   ├── StatusUnknown      a configured status is not one the workspace allows
│   ├── BadRequest         any other refusal of a request as malformed
│   ├── BadResponse        the registry's answer does not have the documented shape
│   └── CometUnavailable   unreachable, timing out, 5xx or 429 after every retry
├── ArchiveError           a downloaded archive is unsafe or does not match the registry
│   ├── UnsafeArchive      absolute paths, '..', links, or an unreadable zip
│   ├── ArchiveTooLarge    over the caps on size, entry count or compression ratio
│   ├── SizeMismatch       sizes disagree with the registry's fileSize
│   ├── RemoteAssetRefused a remote asset that cannot be fetched: another scheme, a sync error
│   └── UnsafeValue        a version, id, status or file name is not what Comet documents
├── RemoteStoreError       S3 / GCS could not give a remote asset now: denied, missing, failing
├── InsufficientSpace      not enough free disk for a download, checked before it starts
├── SecretUnavailable      a mounted secret file is missing, empty or malformed right now
├── SnapshotRejected       serving refused to load a staged snapshot
├── ModelUndescribable     describe: a model or sample column a signature cannot hold (named)
└── ServingUnavailable     serving could not be asked to validate or reload

Stopped is not in the tree: a stop request is never a failure. It is raised wherever a stop is
noticed (the client's retry sleeps, the download, the unzip, validation polling) and caught first
by the loop.
"""


class RegistrySyncError(Exception):
    """Base of every error registry-sync raises on purpose."""


class ConfigError(RegistrySyncError):
    """A setting is missing or malformed."""


class ModelUndescribable(RegistrySyncError):
    """describe cannot make a model's signature: the message names the column or the file."""


class CometError(RegistrySyncError):
    """The registry answered something we cannot use."""


class Unauthorized(CometError):
    """The API key is wrong, revoked or lacks access to the workspace."""


class WorkspaceNotFound(CometError):
    """The configured workspace does not exist."""


class ModelNotFound(CometError):
    """A registry model does not exist in the workspace."""

    def __init__(self, workspace: str, name: str):
        super().__init__(
            f"registry model {name!r} not found in workspace {workspace!r}: "
            "check REGISTRY_MODELS and COMET_WORKSPACE"
        )
        self.workspace, self.name = workspace, name


class VersionNotFound(CometError):
    """A version of a registry model does not exist."""

    def __init__(self, workspace: str, name: str, version: str):
        super().__init__(f"version {version!r} of {workspace}/{name} not found")
        self.workspace, self.name, self.version = workspace, name, version


class PaymentRequired(CometError):
    """The registry refused a request because a limit of the Comet plan was reached (402)."""


class InstructionsMissing(CometError):
    """The registry answered 404 to download-instructions (an older or partial server)."""


class StatusUnknown(CometError):
    """A configured status is not among the workspace's allowed_status_values."""

    def __init__(self, unknown: list[str], allowed: tuple[str, ...], workspace: str):
        shown = [_shown(s) for s in allowed[:20]]
        hints = [f"{u!r} is written {a!r} there" for u in unknown for a in allowed
                 if a.casefold() == u.casefold()]
        super().__init__(
            f"status {', '.join(map(repr, unknown))} is not one workspace {workspace!r} allows "
            f"({', '.join(shown)}{', ...' if len(allowed) > 20 else ''}); Comet compares status "
            "names case-sensitively"
            + (f" ({'; '.join(hints[:3])})" if hints else "")
            + ": check REGISTRY_STATUS / REGISTRY_CANDIDATE_STATUS")
        self.unknown, self.allowed = unknown, allowed


def _shown(value: str) -> str:
    """A registry-given name, bounded and printable, for a message."""
    return repr(value[:64].encode("ascii", "backslashreplace").decode("ascii"))


class BadRequest(CometError):
    """The registry refused a request as malformed."""


class BadResponse(CometError):
    """The registry's answer does not have the documented shape."""


class CometUnavailable(CometError):
    """The registry could not be reached, or kept failing, after every retry."""

    retry_after: float | None = None  # seconds the registry asked us to wait, if it did


class ArchiveError(RegistrySyncError):
    """A downloaded archive is unsafe or does not match the registry."""


class UnsafeArchive(ArchiveError):
    """An archive holds absolute paths, '..', links, or cannot be read as a zip."""


class ArchiveTooLarge(ArchiveError):
    """An archive exceeds the caps on size, entry count or compression ratio."""


class SizeMismatch(ArchiveError):
    """A file's size disagrees with the registry's fileSize."""


class RemoteAssetRefused(ArchiveError):
    """A remote asset the sidecar will not fetch: not s3:// or gs://, not synced, malformed."""


class UnsafeValue(ArchiveError):
    """A registry value is not what Comet documents (semver, bounded safe names and ids)."""

    key = ""  # the version set it was found in, once known (Syncer's check_chosen sets it)

    def __init__(self, model: str, field: str, value: str, expected: str):
        shown = value[:40].encode("ascii", "backslashreplace").decode("ascii")
        super().__init__(f"{model}: field {field} is {shown!r}: expected {expected}")
        self.model, self.field, self.value = model, field, value


class RemoteStoreError(RegistrySyncError):
    """An object store (S3, GCS) refused or failed a remote asset; the pass is retried later."""


class InsufficientSpace(RegistrySyncError):
    """Not enough free disk under MODEL_ROOT for a download."""


class SecretUnavailable(RegistrySyncError):
    """A secret file cannot be used now (e.g. mid-rotation); the message names its variable."""


class SnapshotRejected(RegistrySyncError):
    """Serving refused to load a staged snapshot."""

    def __init__(self, snapshot_id: str, reason: str):
        super().__init__(f"serving rejected snapshot {snapshot_id}: {reason}")
        self.snapshot_id, self.reason = snapshot_id, reason


class ServingUnavailable(RegistrySyncError):
    """Serving could not be asked to validate or reload."""


class LeadershipLost(RegistrySyncError):
    """A leader's pass found, before publishing, that this sidecar no longer leads."""


class Stopped(Exception):
    """A stop was requested: whatever was under way is abandoned, and that is not a failure."""
