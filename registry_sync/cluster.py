"""One sidecar's place in its Deployment: the election and the decision watch, on threads.

The daemon's loop asks `is_leader()` before each pass. A leader polls Comet as a standalone
sidecar does and then `announce`s what it published; a follower installs `decision()`. The
threads only observe and wake the loop (a new decision, a change of leadership); every choice
stays in the loop.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from model_contract import logs, poll_now
from model_contract.manifest import Manifest

from . import decision
from .decision import Decision, DecisionError, DecisionWatcher
from .election import ElectionSettings, Elector
from .errors import RegistrySyncError

log = logs.get(__name__)


class Cluster:
    """Election on the Lease, and the decision the Lease carries, for one sidecar."""

    def __init__(self, settings: ElectionSettings, election_lease, watch_lease, peer_url: str,
                 token: Callable[[], str], wake: Callable[[], None]):
        self.settings, self.peer_url, self._token, self._wake = settings, peer_url, token, wake
        self.elector = Elector(election_lease, settings, on_change=lambda leading: wake())
        self.watcher = DecisionWatcher(watch_lease, self._received, retry=settings.retry_period)
        self._latest: Decision | None = None
        self._threads: list[threading.Thread] = []

    def start(self, stop: threading.Event) -> None:
        """Run the election and the watch until `stop` is set."""
        for name, target in (("election", self.elector.run), ("decision-watch", self.watcher.run)):
            thread = threading.Thread(target=target, args=(stop,), name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def close(self, timeout: float = 5.0) -> None:
        """After `stop` is set: end the watch stream, release the Lease, join the threads."""
        self.watcher.stop()
        for thread in self._threads:
            thread.join(timeout)

    def is_leader(self) -> bool:
        """True while this sidecar holds the Lease (judged now, not at the last renewal)."""
        return self.elector.is_leader()

    def decision(self) -> Decision | None:
        """The newest decision seen on the Lease."""
        return self._latest

    def announce(self, published: Manifest, challenger: Manifest | None = None) -> None:
        """As leader, write the published snapshot (and challenger) as the decision, if new.

        A new leader rewrites even an unchanged set, naming itself, and so does a leader that
        rebuilt the same set (a damaged snapshot replaced): followers then fetch files that
        exist from, and forward webhooks to, a replica that is alive.
        """
        try:
            on_lease = decision.parse(self.elector.annotations.get(decision.DECISION_ANNOTATION)
                                      or "null")
        except DecisionError:
            on_lease = None
        made = decision.from_manifest(published, self.settings.identity, self.peer_url, challenger)
        if on_lease is not None and (on_lease.identity, on_lease.snapshot_id) == (
                made.identity, made.snapshot_id):
            return
        try:
            text = made.to_annotation()
        except DecisionError as exc:
            log.error("decision_not_written", reason=str(exc))
            return
        if self.elector.annotate({decision.DECISION_ANNOTATION: text}):
            log.info("decision_written", snapshot=made.snapshot_id, versions=made.versions,
                     candidate=made.candidate.versions if made.candidate else None)

    def describe(self) -> dict[str, object]:
        """Who leads and what was decided, for /status."""
        latest = self._latest
        return {"leader": self.is_leader(), "holder": self.elector.holder,
                "decision": None if latest is None else {
                    "snapshot": latest.snapshot_id, "versions": latest.versions,
                    "leader": latest.leader,
                    "candidate": latest.candidate.versions if latest.candidate else None}}

    def poll_now(self) -> None:
        """A webhook's wake-up: the leader polls at once; a follower passes it to the leader."""
        latest = self._latest
        if self.is_leader() or latest is None or latest.leader == self.settings.identity:
            self._wake()
            return
        threading.Thread(target=self._forward, args=(latest.peer_url,), daemon=True).start()

    def _forward(self, leader_url: str) -> None:
        try:
            token = self._token()
        except RegistrySyncError as exc:  # the token file mid-rotation: the poll comes anyway
            log.warning("poll_now_not_forwarded", leader=leader_url, error=str(exc))
            return
        try:
            status = poll_now.wake(leader_url, token, timeout=2.0)
        except poll_now.FAILURES as exc:
            log.warning("poll_now_not_forwarded", leader=leader_url,
                        error_type=type(exc).__name__)
            return
        log.info("poll_now_forwarded", leader=leader_url, status=status)

    def _received(self, found: Decision) -> None:
        self._latest = found
        self._wake()
