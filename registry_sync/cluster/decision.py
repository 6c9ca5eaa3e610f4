"""The decided version set: what the leader published, written on the Lease, watched by followers.

The leader writes it as the annotation `registry-sync.comet.com/decision` on the election Lease
(docs/deploy.md argues for the Lease over a ConfigMap): the models of the snapshot it published,
as its manifest names them (workspace, name, version, registryModelItemId, status,
experimentKey, every file with size and SHA-256), the snapshot id, and the leader's peer URL.
Followers read it through a watch (DecisionWatcher) and install exactly that set.

A decision read back is untrusted until parsed: malformed JSON, a file path that is absolute or
climbs with '..', a hash that is not 64 hex digits, or a negative size is a DecisionError naming
the field, and the follower keeps what it serves. A set with so many files that their list
would not fit on the Lease (over 200 KiB, candidate included) is written without the lists of
both sets (`filesListed: false`): followers then download them from Comet, checked as a lone
sidecar checks a download.

When the leader also links a challenger (`candidate`, docs/challenger.md), the decision carries it
as `candidate`: that snapshot's id and models, with the same fields and the same checks, naming
exactly the champion's models (so it is bounded by them). A decision without the field (an older
leader, or no candidate) means no candidate: followers remove their `candidate` link.

The guard's refusals ride along as `refused` (registry_sync.cluster.decision_refusals), so that
a follower elected next knows them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sized
from dataclasses import asdict, dataclass, replace
from pathlib import PurePosixPath
from typing import Any

from model_contract import logs
from model_contract.manifest import FileEntry, Manifest, ModelEntry

from ..errors import UnsafeValue
from ..registries.values import ModelVersion, check_values
from .decision_refusals import HandedRefusal, handed
from .election import LeaseRecord

log = logs.get(__name__)

DECISION_ANNOTATION = "registry-sync.comet.com/decision"
MAX_ANNOTATION_BYTES = 200 * 1024  # all annotations of an object together must stay < 256 KiB
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_SAFE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_POD_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")  # a DNS subdomain
_PEER_URL = re.compile(r"^https?://(\[[0-9A-Fa-f:.]{2,45}\]|[A-Za-z0-9.-]{1,253}):[0-9]{1,5}$")
MAX_MODELS, MAX_FILES, MAX_TEXT = 64, 10_000, 1024


class DecisionError(Exception):
    """A decision annotation that cannot be trusted as written (the message names the field)."""


@dataclass(frozen=True)
class DecidedSet:
    """A challenger snapshot the leader linked as `candidate`: its id and its models."""

    snapshot_id: str
    models: tuple[ModelEntry, ...]

    @property
    def key(self) -> tuple[tuple[str, str, str], ...]:
        """Each model's name, version and item id."""
        return tuple((m.name, m.version, m.registryModelItemId) for m in self.models)

    @property
    def versions(self) -> dict[str, str]:
        """Registry model name -> version."""
        return {m.name: m.version for m in self.models}


@dataclass(frozen=True)
class Decision:
    """A complete version set the leader published, and where its files can be fetched."""

    snapshot_id: str
    models: tuple[ModelEntry, ...]
    leader: str
    peer_url: str
    files_listed: bool = True  # False: too many files for the Lease; followers use Comet
    candidate: DecidedSet | None = None  # the leader's challenger, when it links one
    issued_at: float = 0.0  # when the leader last confirmed it (time.time()): staleness
    config: str = ""  # the leader's configuration fingerprint (models, status, tag...)
    refused: tuple[HandedRefusal, ...] = ()  # the guard's refusals, for whoever leads next

    @property
    def champion(self) -> DecidedSet:
        """The published (champion) set alone."""
        return DecidedSet(self.snapshot_id, self.models)

    @property
    def key(self) -> tuple[tuple[str, str, str], ...]:
        """What makes two decisions the same set: each model's name, version and item id."""
        return self.champion.key

    @property
    def versions(self) -> dict[str, str]:
        """Registry model name -> version."""
        return self.champion.versions

    @property
    def identity(self) -> tuple:
        """What a follower acts on: both sets (champion and candidate snapshot) and the leader."""
        decided = self.candidate
        return (self.key, None if decided is None else (decided.snapshot_id, decided.key),
                self.leader, self.peer_url)

    def to_annotation(self) -> str:
        """The JSON text written on the Lease, without the file lists if they would not fit."""
        text = self._json()
        if len(text.encode()) > MAX_ANNOTATION_BYTES and self.files_listed:
            log.warning("decision_files_omitted", snapshot=self.snapshot_id,
                        bytes=len(text.encode()), limit=MAX_ANNOTATION_BYTES)
            text = self._without_files()._json()
        if len(text.encode()) > MAX_ANNOTATION_BYTES:
            raise DecisionError(f"decision of snapshot {self.snapshot_id} is "
                                f"{len(text.encode())} bytes, over {MAX_ANNOTATION_BYTES}")
        return text

    def _without_files(self) -> Decision:
        def bare(models: tuple[ModelEntry, ...]) -> tuple[ModelEntry, ...]:
            return tuple(replace(m, files=()) for m in models)

        decided = self.candidate
        return replace(self, files_listed=False, models=bare(self.models),
                       candidate=None if decided is None else replace(
                           decided, models=bare(decided.models)))

    def _json(self) -> str:
        raw: dict[str, Any] = {"snapshotId": self.snapshot_id, "leader": self.leader,
                               "peerUrl": self.peer_url, "filesListed": self.files_listed,
                               "issuedAt": round(self.issued_at, 3), "config": self.config,
                               "models": [asdict(m) for m in self.models]}
        if self.refused:
            raw["refused"] = [r.to_json() for r in self.refused]
        if self.candidate is not None:
            raw["candidate"] = {"snapshotId": self.candidate.snapshot_id,
                                "models": [asdict(m) for m in self.candidate.models]}
        return json.dumps(raw, sort_keys=True, separators=(",", ":"))


def from_manifest(published: Manifest, leader: str, peer_url: str,
                  challenger: Manifest | None = None, issued_at: float = 0.0,
                  config: str = "", refused: tuple[HandedRefusal, ...] = ()) -> Decision:
    """The decision naming a published snapshot, and the challenger linked beside it if any."""
    decided = None if challenger is None else DecidedSet(challenger.snapshotId, challenger.models)
    return Decision(published.snapshotId, published.models, leader, peer_url,
                    candidate=decided, issued_at=issued_at, config=config, refused=refused)


def _checked(raw: Any, where: str, kind: type[Sized], limit: int) -> Any:
    """raw if it is a `kind` of at most `limit` items/characters; DecisionError otherwise."""
    if not isinstance(raw, kind) or isinstance(raw, bool) or len(raw) > limit:
        raise DecisionError(f"{where} is not a {kind.__name__} of at most {limit} items")
    return raw


def _file(raw: Any, where: str) -> FileEntry:
    _checked(raw, where, dict, 8)
    path, size, digest = raw.get("path"), raw.get("size"), raw.get("sha256")
    pure = PurePosixPath(path) if isinstance(path, str) and len(path) <= MAX_TEXT else None
    if pure is None or not path or pure.is_absolute() or ".." in pure.parts or "\\" in path \
            or not path.isprintable():
        raise DecisionError(f"{where}.path is not a relative path inside the model")
    if not isinstance(size, int) or isinstance(size, bool) or not 0 <= size < 2**53:
        raise DecisionError(f"{where}.size is not a byte count")
    if not isinstance(digest, str) or not _SHA256.match(digest):
        raise DecisionError(f"{where}.sha256 is not 64 lowercase hex digits")
    return FileEntry(path, size, digest)


def _model(raw: Any, where: str) -> ModelEntry:
    _checked(raw, where, dict, 16)
    fields = ("workspace", "name", "version", "registryModelItemId", "status", "experimentKey")
    values = {f: raw.get(f) for f in fields}
    for name in ("name", "registryModelItemId"):
        if not isinstance(values[name], str) or not _SAFE.match(values[name]):
            raise DecisionError(f"{where}.{name} is not a safe name")
    for name in fields:
        if not isinstance(values[name], str) or len(values[name]) > MAX_TEXT:
            raise DecisionError(f"{where}.{name} is missing or not a short string")
    files = _checked(raw.get("files"), f"{where}.files", list, MAX_FILES)
    entry = ModelEntry(**values, files=tuple(_file(f, f"{where}.files[{i}]")
                                             for i, f in enumerate(files)))
    if len({f.path for f in entry.files}) != len(entry.files):
        raise DecisionError(f"{where}.files names a path twice")
    try:  # the values a registry answer must pass reach the same paths, labels and logs
        check_values(entry.name, ModelVersion(entry.version, entry.registryModelItemId,
                                              entry.status, (), (), entry.experimentKey, 0, "",
                                              ()))
    except UnsafeValue as exc:
        raise DecisionError(f"{where}: {exc}") from None
    return entry


def parse(text: Any) -> Decision:
    """A decision from its annotation text; DecisionError naming what is wrong, never another."""
    if not isinstance(text, str) or len(text) > MAX_ANNOTATION_BYTES:
        raise DecisionError(f"{DECISION_ANNOTATION} is not text of at most "
                            f"{MAX_ANNOTATION_BYTES} characters")
    try:
        raw = json.loads(text)
    except (ValueError, RecursionError) as exc:  # RecursionError: nested too deep to parse
        raise DecisionError(f"{DECISION_ANNOTATION} is not JSON: "
                            f"{type(exc).__name__}") from None
    try:
        return _decision(raw)
    except DecisionError:
        raise
    except Exception as exc:  # a shape not foreseen above is a refusal, never a dead thread
        raise DecisionError(f"{DECISION_ANNOTATION} is malformed: "
                            f"{type(exc).__name__}") from None


def _decision(raw: Any) -> Decision:
    _checked(raw, DECISION_ANNOTATION, dict, 16)
    models = _models(_checked(raw.get("models"), "models", list, MAX_MODELS), "models")
    if not models:
        raise DecisionError(f"{DECISION_ANNOTATION} has no models")
    snapshot_id, peer_url, leader = raw.get("snapshotId"), raw.get("peerUrl"), raw.get("leader")
    if not isinstance(snapshot_id, str) or not _SAFE.match(snapshot_id):
        raise DecisionError("snapshotId is not a safe name")
    if not isinstance(peer_url, str) or not _PEER_URL.match(peer_url):
        raise DecisionError("peerUrl is not http(s)://host:port")
    if not isinstance(leader, str) or not _POD_NAME.match(leader):
        raise DecisionError("leader is not a pod name")
    files_listed = raw.get("filesListed", True)
    if not isinstance(files_listed, bool):
        raise DecisionError("filesListed is not true or false")
    issued_at, config = raw.get("issuedAt", 0.0), raw.get("config", "")
    if not isinstance(issued_at, int | float) or isinstance(issued_at, bool) \
            or not 0 <= issued_at < 1e11:
        raise DecisionError("issuedAt is not a time in seconds since the epoch")
    if not isinstance(config, str) or len(config) > 64:
        raise DecisionError("config is not a configuration fingerprint")
    return Decision(snapshot_id, models, leader, peer_url, files_listed,
                    _candidate(raw.get("candidate"), models), float(issued_at), config,
                    handed(raw.get("refused"), DecisionError))


def _models(raw: list[Any], where: str) -> tuple[ModelEntry, ...]:
    models = tuple(_model(m, f"{where}[{i}]") for i, m in enumerate(raw))
    if len({m.name for m in models}) != len(models):
        raise DecisionError(f"{where} names a model twice")
    return models


def _candidate(raw: Any, champion: tuple[ModelEntry, ...]) -> DecidedSet | None:
    """The challenger set, None if absent; it must name exactly the champion's models."""
    if raw is None:
        return None
    _checked(raw, "candidate", dict, 8)
    listed = _checked(raw.get("models"), "candidate.models", list, MAX_MODELS)
    snapshot_id = raw.get("snapshotId")
    if not isinstance(snapshot_id, str) or not _SAFE.match(snapshot_id):
        raise DecisionError("candidate.snapshotId is not a safe name")
    if len(listed) != len(champion):  # bounded before any entry is parsed
        raise DecisionError(f"candidate.models has {len(listed)} entries, "
                            f"the decision has {len(champion)} models")
    models = _models(listed, "candidate.models")
    if sorted(m.name for m in models) != sorted(m.name for m in champion):
        raise DecisionError("candidate.models does not name the decision's models")
    return DecidedSet(snapshot_id, models)


def read(record: LeaseRecord | None) -> Decision | None:
    """The decision a Lease carries, None if none; DecisionError if it is malformed."""
    text = (record.annotations if record else {}).get(DECISION_ANNOTATION)
    return parse(text) if text else None
