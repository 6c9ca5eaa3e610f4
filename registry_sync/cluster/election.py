"""Leader election on one coordination.k8s.io/v1 Lease, in client-go's leaderelection style.

The sidecars of one Deployment share a Lease named by LEADER_ELECTION_LEASE. Every
`retry_period` each one tries to acquire or renew it:

- absent: create it holding it;
- held by another whose record this process has seen unchanged for less than
  `lease_duration`: do nothing (the local clock measures expiry, never the holder's renewTime,
  so clock skew between nodes cannot steal a lease);
- otherwise (expired, released, or ours): replace it with our identity and a fresh renewTime,
  carrying the resourceVersion read, so that of two replicas racing only one wins (409).

A leader that has not renewed for `renew_deadline` stops calling itself leader, whether the API
server was unreachable or the process was frozen: `is_leader()` is judged at the moment it is
asked. On stop a leader releases the Lease (empty holder) so another takes over at once.

Writes of the decided version set go through `annotate`, a conditional update that succeeds only
while this process holds the Lease: a deposed leader's write is refused, never applied.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Protocol

from model_contract import logs
from registry_sync.settings import setting

log = logs.get(__name__)


class LeaseConflict(Exception):
    """The Lease changed since it was read (409), or already exists on create."""


class LeaseUnavailable(Exception):
    """The API server could not be asked (refused, unreachable, timed out, malformed answer)."""


@dataclass(frozen=True)
class ElectionSettings:
    """Which Lease, who we are, and the three durations of the standard pattern."""

    namespace: str
    lease_name: str
    identity: str
    lease_duration: float = setting("LEADER_ELECTION_LEASE_DURATION")
    renew_deadline: float = setting("LEADER_ELECTION_RENEW_DEADLINE")
    retry_period: float = setting("LEADER_ELECTION_RETRY_PERIOD")


@dataclass(frozen=True)
class LeaseRecord:
    """What a Lease holds that the election reads or writes."""

    holder: str = ""
    lease_duration: int = 15
    acquire_time: str | None = None
    renew_time: str | None = None
    transitions: int = 0
    resource_version: str = ""
    annotations: Mapping[str, str] = field(default_factory=dict)


class LeaseStore(Protocol):
    """The narrow seam to the API server: one named Lease."""

    def get(self) -> LeaseRecord | None:
        """The Lease, or None when it does not exist."""

    def create(self, record: LeaseRecord) -> LeaseRecord:
        """Create it; LeaseConflict if it exists."""

    def replace(self, record: LeaseRecord) -> LeaseRecord:
        """Replace it, conditional on record.resource_version; LeaseConflict if stale."""


def micro_time(moment: datetime) -> str:
    """A timestamp as the API server writes a MicroTime."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _utcnow() -> datetime:
    return datetime.now(UTC)


class Elector:
    """Acquires, renews and releases the Lease; answers whether this process leads now."""

    def __init__(self, store: LeaseStore, settings: ElectionSettings,
                 clock: Callable[[], float] = time.monotonic,
                 now: Callable[[], datetime] = _utcnow,
                 on_change: Callable[[bool], None] = lambda leading: None):
        self.store, self.settings = store, settings
        self._clock, self._now, self._on_change = clock, now, on_change
        self._lock = threading.Lock()
        self._observed: LeaseRecord | None = None
        self._observed_at = 0.0
        self._renewed_at: float | None = None  # clock() of our last successful write as holder
        self._was_leading = False
        self.attempted_at = clock()  # the loop's last attempt, for /healthz
        self.sitting_out = threading.Event()  # set: stepped down, do not take the Lease

    def is_leader(self) -> bool:
        """True while our last successful renewal is younger than the renew deadline."""
        renewed = self._renewed_at
        return renewed is not None and self._clock() - renewed < self.settings.renew_deadline

    @property
    def holder(self) -> str:
        """The identity last seen holding the Lease ('' if none)."""
        return self._observed.holder if self._observed else ""

    @property
    def annotations(self) -> Mapping[str, str]:
        """The Lease's annotations as last read or written."""
        return dict(self._observed.annotations) if self._observed else {}

    def try_acquire_or_renew(self) -> bool:
        """One attempt; True if we hold the Lease after it. Never raises for API trouble."""
        with self._lock:
            try:
                self._attempt()
            except LeaseConflict:
                log.debug("lease_conflict", lease=self.settings.lease_name)
            except LeaseUnavailable as exc:
                log.warning("lease_unavailable", lease=self.settings.lease_name, error=str(exc))
            leading = self.is_leader()
        self._report(leading)
        return leading

    def annotate(self, annotations: Mapping[str, str]) -> bool:
        """Write annotations on the Lease if we still hold it; False if not (or not now)."""
        with self._lock:
            if not self.is_leader() or self._observed is None:
                return False
            record = replace(self._observed,
                             annotations={**self._observed.annotations, **annotations})
            try:
                self._write(self.store.replace, record)
            except (LeaseConflict, LeaseUnavailable) as exc:
                log.warning("lease_annotate_failed", lease=self.settings.lease_name,
                            error=str(exc) or type(exc).__name__)
                return False
            return True

    def release(self) -> None:
        """Give the Lease up (empty holder, 1 s duration) if we hold it, so another leads now."""
        with self._lock:
            if self.is_leader() and self._observed is not None:
                record = replace(self._observed, holder="", lease_duration=1)
                try:
                    self.store.replace(record)
                    log.info("lease_released", lease=self.settings.lease_name)
                except (LeaseConflict, LeaseUnavailable) as exc:
                    log.warning("lease_release_failed", error=str(exc) or type(exc).__name__)
            self._renewed_at = None
        self._report(False)

    def run(self, stop: threading.Event) -> None:
        """Try every retry period until stopped, then release; no error ends the thread."""
        while not stop.is_set():
            self.attempted_at = self._clock()
            try:
                if self.sitting_out.is_set():
                    self.release()
                else:
                    self.try_acquire_or_renew()
            except Exception as exc:  # a bug costs a retry period, never the election
                log.error("election_crashed", lease=self.settings.lease_name,
                          error_type=type(exc).__name__, error=str(exc)[:300])
            stop.wait(self.settings.retry_period)
        self.release()

    def step_down(self) -> None:
        """Release the Lease and stay out of the election until `rejoin()`."""
        self.sitting_out.set()
        self.release()

    def rejoin(self) -> None:
        """Take part in the election again."""
        self.sitting_out.clear()

    def _attempt(self) -> None:
        settings, stamp = self.settings, micro_time(self._now())
        current = self.store.get()
        duration = math.ceil(settings.lease_duration)  # never shorter than our renew deadline
        if current is None:
            mine = LeaseRecord(settings.identity, duration, stamp, stamp)
            self._write(self.store.create, mine)
            return
        self._observe(current)
        # a holder's own duration counts, but never longer than ours: a Lease writer cannot
        # keep the Deployment leaderless for an hour with one write
        honoured = min(max(current.lease_duration, 0), duration)
        if current.holder not in ("", settings.identity) and (
                self._clock() - self._observed_at < honoured):
            self._renewed_at = None  # someone else holds it: we cannot be leading
            return
        taking_over = current.holder != settings.identity
        mine = replace(current, holder=settings.identity, lease_duration=duration, renew_time=stamp,
                       acquire_time=stamp if taking_over else current.acquire_time,
                       transitions=current.transitions + (1 if taking_over else 0))
        self._write(self.store.replace, mine)

    def _write(self, call: Callable[[LeaseRecord], LeaseRecord], record: LeaseRecord) -> None:
        started = self._clock()
        written = call(record)
        self._renewed_at = started  # measured from before the call, as client-go does
        self._observed, self._observed_at = written, started

    def _observe(self, record: LeaseRecord) -> None:
        """Restart the expiry clock whenever the Lease's content changes."""
        seen = self._observed
        if seen is None or (seen.holder, seen.renew_time, seen.resource_version) != (
                record.holder, record.renew_time, record.resource_version):
            self._observed, self._observed_at = record, self._clock()

    def _report(self, leading: bool) -> None:
        if leading != self._was_leading:
            self._was_leading = leading
            log.info("leadership_changed", leading=leading, identity=self.settings.identity,
                     lease=self.settings.lease_name)
            self._on_change(leading)


def record_from_lease(body: Mapping[str, Any]) -> LeaseRecord:
    """A LeaseRecord from a Lease's JSON as the API server sends it."""
    metadata, spec = body.get("metadata") or {}, body.get("spec") or {}
    return LeaseRecord(
        holder=spec.get("holderIdentity") or "",
        lease_duration=int(spec.get("leaseDurationSeconds") or 0),
        acquire_time=spec.get("acquireTime"), renew_time=spec.get("renewTime"),
        transitions=int(spec.get("leaseTransitions") or 0),
        resource_version=str(metadata.get("resourceVersion") or ""),
        annotations=dict(metadata.get("annotations") or {}),
    )


def lease_body(name: str, namespace: str, record: LeaseRecord) -> dict[str, Any]:
    """A Lease's JSON for a create or a replace."""
    metadata: dict[str, Any] = {"name": name, "namespace": namespace,
                                "annotations": dict(record.annotations)}
    if record.resource_version:
        metadata["resourceVersion"] = record.resource_version
    return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": metadata,
            "spec": {"holderIdentity": record.holder,
                     "leaseDurationSeconds": record.lease_duration,
                     "acquireTime": record.acquire_time, "renewTime": record.renew_time,
                     "leaseTransitions": record.transitions}}
