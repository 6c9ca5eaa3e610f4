"""One sidecar's place in its Deployment: the election and the decision watch, on threads.

The daemon's loop asks `is_leader()` before each pass. A leader polls Comet as a standalone
sidecar does and then `announce`s what it published, sealed with the Deployment's key; a
follower installs `decision()`. The Lease is not trusted alone: a decision that is not sealed
with the key, is malformed, was made for another configuration, or has not been confirmed by
its leader for `max_age` seconds is not followed (`why_not()` says why) and the follower polls
Comet itself. The threads only observe and wake the loop; every choice stays in the loop.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from model_contract import logs
from model_contract.manifest import Manifest

from . import decision, decision_seal
from .decision import Decision, DecisionError
from .decision_refusals import HandedRefusal
from .decision_watch import DecisionWatcher
from .election import ElectionSettings, Elector
from .wake_forward import Forwarder

log = logs.get(__name__)


@dataclass(frozen=True)
class Trust:
    """What a follower checks a decision against: the key, its configuration, its age."""

    key: Callable[[], bytes]
    config_id: str
    max_age: float


class Cluster:
    """Election on the Lease, and the decision the Lease carries, for one sidecar."""

    def __init__(self, settings: ElectionSettings, election_lease, watch_lease, peer_url: str,
                 trust: Trust, wake: Callable[[], None], pods=None,
                 clock: Callable[[], float] = time.time):
        self.settings, self.peer_url, self.trust, self._wake = settings, peer_url, trust, wake
        self._pods, self._clock = pods, clock
        self.binding = f"{settings.namespace}/{settings.lease_name}"
        self.elector = Elector(election_lease, settings, on_change=lambda leading: wake())
        self.watcher = DecisionWatcher(watch_lease, self._received, trust.key, self.binding,
                                       retry=settings.retry_period)
        self.forwarder = Forwarder(lambda: decision_seal.peer_token(trust.key()))
        self._latest: Decision | None = None
        self._refused = ""  # why the Lease's current decision is not followed, if it is not
        self._threads: list[threading.Thread] = []

    def start(self, stop: threading.Event) -> None:
        """Run the election, the watch and the wake-up forwarder until `stop` is set."""
        for name, target in (("election", self.elector.run), ("decision-watch", self.watcher.run),
                             ("poll-now-forward", self.forwarder.run)):
            thread = threading.Thread(target=target, args=(stop,), name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def close(self, timeout: float = 5.0) -> None:
        """After `stop` is set: end the watch stream, release the Lease, join the threads."""
        self.watcher.stop()
        self.forwarder.wanted.set()
        for thread in self._threads:
            thread.join(timeout)

    def is_leader(self) -> bool:
        """True while this sidecar holds the Lease (judged now, not at the last renewal)."""
        return self.elector.is_leader()

    def decision(self) -> Decision | None:
        """The newest authentic decision seen on the Lease, None if none was ever seen."""
        return self._latest

    def why_not(self, decided: Decision | None) -> str:
        """Why this follower must not follow the Lease now ('' when it may)."""
        if self._refused:
            return f"the decision on the Lease is refused: {self._refused}"
        if decided is None:
            return ""
        if decided.config != self.trust.config_id:
            return "the decision was made for another configuration"
        age = self._clock() - decided.issued_at
        if age > self.trust.max_age:
            return (f"the decision was last confirmed {age:.0f}s ago "
                    f"(over {self.trust.max_age:.0f}s)")
        return ""

    def peer_for(self, decided: Decision) -> str:
        """The decision's peer URL if it is the pod holding the Lease, by its IP; else ''."""
        holder = self.watcher.holder
        if decided.leader != holder or self._pods is None:
            return ""
        ip = self._pods.ip_of(holder)
        return decided.peer_url if ip and urlsplit(decided.peer_url).hostname == ip else ""

    def announce(self, published: Manifest, challenger: Manifest | None = None,
                 refused: tuple[HandedRefusal, ...] = ()) -> None:
        """As leader, write the published snapshot (and challenger) as the decision, if new.

        A new leader rewrites even an unchanged set, naming itself, and so does a leader that
        rebuilt the same set, or whose decision is a third of `max_age` old (followers take an
        unconfirmed decision for a stuck leader); anything on the Lease that is not its own
        well-formed, sealed decision is overwritten.
        """
        on_lease = self._on_lease()
        made = decision.from_manifest(published, self.settings.identity, self.peer_url,
                                      challenger, self._clock(), self.trust.config_id, refused)
        if on_lease is not None and \
                (on_lease.identity, on_lease.snapshot_id, on_lease.config, on_lease.refused) \
                == (made.identity, made.snapshot_id, made.config, made.refused) \
                and made.issued_at - on_lease.issued_at < self.trust.max_age / 3:
            return
        try:
            text = decision_seal.seal(made.to_annotation(), self.trust.key(), self.binding)
        except (DecisionError, OSError, ValueError) as exc:
            log.error("decision_not_written", reason=str(exc)[:300])
            return
        if self.elector.annotate({decision.DECISION_ANNOTATION: text}):
            log.info("decision_written", snapshot=made.snapshot_id, versions=made.versions,
                     candidate=made.candidate.versions if made.candidate else None)

    def _on_lease(self) -> Decision | None:
        """Our own decision as the Lease holds it; None for anything else, whatever it is."""
        text = self.elector.annotations.get(decision.DECISION_ANNOTATION)
        if text is None:
            return None
        try:
            return decision.parse(decision_seal.unseal(text, self.trust.key(), self.binding))
        except DecisionError:  # unsealed, another key's, malformed: parse and unseal say so
            return None

    def describe(self) -> dict[str, object]:
        """Who leads and what was decided, for /status."""
        latest = self._latest
        return {"leader": self.is_leader(), "holder": self.elector.holder,
                "refused": self._refused or None,
                "decision": None if latest is None else {
                    "snapshot": latest.snapshot_id, "versions": latest.versions,
                    "leader": latest.leader, "issuedAt": latest.issued_at,
                    "candidate": latest.candidate.versions if latest.candidate else None}}

    def health(self) -> tuple[bool, str]:
        """Healthy while every cluster thread runs and the election keeps trying."""
        dead = [t.name for t in self._threads if not t.is_alive()]
        if dead:
            return False, f"cluster threads stopped: {', '.join(dead)}"
        age = time.monotonic() - self.elector.attempted_at
        allowed = 5 * self.settings.retry_period + 30
        if self._threads and age > allowed:
            return False, f"no election attempt for {age:.0f}s (allowed {allowed:.0f}s)"
        return True, ""

    def poll_now(self) -> bool:
        """A webhook's wake-up: True if this sidecar should poll; a follower forwards it."""
        latest = self._latest
        if self.is_leader() or latest is None or latest.leader == self.settings.identity:
            return True
        peer = self.peer_for(latest)
        if not peer or self.why_not(latest):
            return True  # no leader to trust with it: this follower polls Comet itself
        self.forwarder.request(peer)
        return False

    def _received(self, found: Decision | None, reason: str) -> None:
        """From the watch: a new decision, or why the Lease's decision is not one to follow."""
        before = self._latest
        if found is None:
            self._refused = reason if reason != "no decision on the Lease" else ""
            self._wake()
            return
        if before is not None and found.issued_at < before.issued_at and \
                found.leader == before.leader:
            self._refused = "an older decision replayed"
            log.error("decision_refused", reason=self._refused, snapshot=found.snapshot_id)
            self._wake()
            return
        self._refused, self._latest = "", found
        if before is None or before.identity != found.identity or self.why_not(before):
            log.info("decision_seen", snapshot=found.snapshot_id, versions=found.versions,
                     leader=found.leader,
                     candidate=found.candidate.versions if found.candidate else None)
            self._wake()
