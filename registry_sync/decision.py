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
"""

from __future__ import annotations

import json
import random
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import PurePosixPath
from typing import Any

from model_contract import logs
from model_contract.manifest import FileEntry, Manifest, ModelEntry

from .election import LeaseRecord, LeaseUnavailable

log = logs.get(__name__)

DECISION_ANNOTATION = "registry-sync.comet.com/decision"
MAX_ANNOTATION_BYTES = 200 * 1024  # all annotations of an object together must stay < 256 KiB
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_SAFE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


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
                               "models": [asdict(m) for m in self.models]}
        if self.candidate is not None:
            raw["candidate"] = {"snapshotId": self.candidate.snapshot_id,
                                "models": [asdict(m) for m in self.candidate.models]}
        return json.dumps(raw, sort_keys=True, separators=(",", ":"))


def from_manifest(published: Manifest, leader: str, peer_url: str,
                  challenger: Manifest | None = None) -> Decision:
    """The decision naming a published snapshot, and the challenger linked beside it if any."""
    decided = None if challenger is None else DecidedSet(challenger.snapshotId, challenger.models)
    return Decision(published.snapshotId, published.models, leader, peer_url,
                    candidate=decided)


def _file(raw: Mapping[str, Any], where: str) -> FileEntry:
    path, size, digest = raw.get("path"), raw.get("size"), raw.get("sha256")
    pure = PurePosixPath(path) if isinstance(path, str) else None
    if pure is None or not path or pure.is_absolute() or ".." in pure.parts or "\\" in path:
        raise DecisionError(f"{where}.path {path!r} is not a relative path inside the model")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise DecisionError(f"{where}.size {size!r} is not a byte count")
    if not isinstance(digest, str) or not _SHA256.match(digest):
        raise DecisionError(f"{where}.sha256 is not 64 lowercase hex digits")
    return FileEntry(path, size, digest)


def _model(raw: Mapping[str, Any], where: str) -> ModelEntry:
    fields = ("workspace", "name", "version", "registryModelItemId", "status", "experimentKey")
    values = {f: raw.get(f) for f in fields}
    for name in ("name", "registryModelItemId"):
        if not isinstance(values[name], str) or not _SAFE.match(values[name]):
            raise DecisionError(f"{where}.{name} {values[name]!r} is not a safe name")
    for name in fields:
        if not isinstance(values[name], str):
            raise DecisionError(f"{where}.{name} is missing")
    files = raw.get("files")
    if not isinstance(files, list):
        raise DecisionError(f"{where}.files is not a list")
    return ModelEntry(**values, files=tuple(_file(f, f"{where}.files[{i}]")
                                            for i, f in enumerate(files)))


def parse(text: str) -> Decision:
    """A decision from its annotation text; DecisionError naming what is wrong."""
    try:
        raw = json.loads(text)
    except ValueError as exc:
        raise DecisionError(f"{DECISION_ANNOTATION} is not JSON: {exc}") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("models"), list) or not raw["models"]:
        raise DecisionError(f"{DECISION_ANNOTATION} has no models")
    snapshot_id, peer_url = raw.get("snapshotId"), raw.get("peerUrl")
    if not isinstance(snapshot_id, str) or not _SAFE.match(snapshot_id):
        raise DecisionError(f"snapshotId {snapshot_id!r} is not a safe name")
    if not isinstance(peer_url, str) or not re.match(r"^https?://[^/?#@]+$", peer_url):
        raise DecisionError(f"peerUrl {peer_url!r} is not http(s)://host:port")
    models = _models(raw["models"], "models")
    files_listed = raw.get("filesListed", True)
    if not isinstance(files_listed, bool):
        raise DecisionError("filesListed is not true or false")
    return Decision(snapshot_id, models, str(raw.get("leader") or ""), peer_url, files_listed,
                    _candidate(raw.get("candidate"), models))


def _models(raw: list[Any], where: str) -> tuple[ModelEntry, ...]:
    return tuple(_model(m, f"{where}[{i}]") if isinstance(m, dict) else _model({}, where)
                 for i, m in enumerate(raw))


def _candidate(raw: Any, champion: tuple[ModelEntry, ...]) -> DecidedSet | None:
    """The challenger set, None if absent; it must name exactly the champion's models."""
    if raw is None:
        return None
    if not isinstance(raw, dict) or not isinstance(raw.get("models"), list):
        raise DecisionError("candidate is not an object with a models list")
    snapshot_id = raw.get("snapshotId")
    if not isinstance(snapshot_id, str) or not _SAFE.match(snapshot_id):
        raise DecisionError(f"candidate.snapshotId {snapshot_id!r} is not a safe name")
    if len(raw["models"]) != len(champion):  # bounded before any entry is parsed
        raise DecisionError(f"candidate.models has {len(raw['models'])} entries, "
                            f"the decision has {len(champion)} models")
    models = _models(raw["models"], "candidate.models")
    if sorted(m.name for m in models) != sorted(m.name for m in champion):
        raise DecisionError("candidate.models does not name the decision's models")
    return DecidedSet(snapshot_id, models)


def read(record: LeaseRecord | None) -> Decision | None:
    """The decision a Lease carries, None if none; DecisionError if it is malformed."""
    text = (record.annotations if record else {}).get(DECISION_ANNOTATION)
    return parse(text) if text else None


class DecisionWatcher:
    """Follows the decision on the Lease through a watch, re-listing and reconnecting as needed.

    `deliver` is called with each new, well-formed decision (not with repeats of the same set
    from the same leader). A broken stream,
    an API server outage or a 410 Gone only delays the next decision: the caller keeps serving.
    """

    def __init__(self, lease: Any, deliver: Callable[[Decision], None],
                 watch_timeout: int = 300, retry: float = 2.0,
                 rand: Callable[[], float] = random.random):
        self.lease, self._deliver = lease, deliver
        self._watch_timeout, self._retry, self._rand = watch_timeout, retry, rand
        self._seen: tuple | None = None
        self._text: str | None = None
        self._watch: Any = None
        self.reconnects = 0

    def run(self, stop: threading.Event) -> None:
        """List, then watch from the listed version; repeat on any break, until stopped."""
        from .lease_api import WatchExpired

        version = ""
        while not stop.is_set():
            try:
                if not version:
                    version = self._list()
                version = self._follow(version, stop)
            except WatchExpired:
                log.info("decision_watch_expired", lease=self.lease.name)
                version = ""
            except LeaseUnavailable as exc:
                self.reconnects += 1
                log.warning("decision_watch_broken", lease=self.lease.name, error=str(exc))
                stop.wait(self._retry * (0.5 + self._rand()))

    def stop(self) -> None:
        """End the current stream now (run() returns once its stop event is set too)."""
        watch = self._watch
        if watch is not None:
            watch.stop()

    def _list(self) -> str:
        record = self.lease.get()
        self._offer(record)
        return record.resource_version if record else "0"

    def _follow(self, version: str, stop: threading.Event) -> str:
        def keep(watch: Any) -> None:
            self._watch = watch

        for kind, record, seen in self.lease.watch(version, self._watch_timeout, keep):
            version = seen or version
            if kind in ("ADDED", "MODIFIED"):
                self._offer(record)
            if stop.is_set():
                break
        return version

    def _offer(self, record: LeaseRecord | None) -> None:
        text = (record.annotations if record else {}).get(DECISION_ANNOTATION)
        if text == self._text:
            return  # a renewal of the Lease: every retry period, nothing decided
        self._text = text
        try:
            found = read(record)
        except DecisionError as exc:
            log.error("decision_refused", lease=self.lease.name, reason=str(exc))
            return
        if found is None or found.identity == self._seen:
            return
        self._seen = found.identity
        log.info("decision_seen", snapshot=found.snapshot_id, versions=found.versions,
                 leader=found.leader,
                 candidate=found.candidate.versions if found.candidate else None)
        self._deliver(found)
