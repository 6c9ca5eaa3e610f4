"""The sync loop: the one place that decides between retrying, backing off and exiting.

While a good snapshot is published the loop never exits on errors; it backs off (exponential,
capped, with jitter) and keeps the snapshot. Before the first good snapshot, INIT_MAX_FAILURES
failed passes in a row stop it with exit code 1. Every wait, a registry's Retry-After included,
is capped at SYNC_MAX_BACKOFF. A stop (SIGTERM) abandons the current step wherever it is noticed
(`Stopped`; an abandoned snapshot stays in .staging, which is cleaned) and exits 0: never a
failure. The heartbeat (/healthz) moves at every step of progress, not only when a pass ends.

In a cluster (a Cluster given, LEADER_ELECTION=auto) each pass first asks who leads: the leader
polls the registry as above and writes what it published on the Lease; a follower installs the
leader's decision (follower.py) and never polls the registry, unless it has no model at all and no
decision came for a whole lease duration (an API server down at start must not keep a new pod
without a model), or the decision on the Lease is not one to follow (refused, stale, another
configuration: Cluster.why_not). A leader whose passes have all failed for LEADER_STEP_DOWN_AFTER
steps down and stays out of the election until a pass of its own succeeds; a leader checks it
still leads before it publishes.

Wake-ups (`poll_now`) are merged and spaced: however many arrive while a pass runs or waits,
they make one pass, and woken passes start at least POLL_NOW_MIN_INTERVAL apart.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from model_contract import layout, logs
from model_contract.manifest import Manifest
from registry_sync.guard import rollback as guard_rollback

from ..errors import ConfigError, LeadershipLost, RegistrySyncError, Stopped
from ..store import snapshot, state
from .syncer import Outcome, Syncer

if TYPE_CHECKING:
    from ..cluster.member import Cluster
    from .follower import Follower

log = logs.get(__name__)

EXIT_OK, EXIT_FAILED = 0, 1


def backoff_delay(failures: int, interval: float, cap: float,
                  rand: Callable[[], float] = random.random) -> float:
    """Exponential backoff from the poll interval, capped, with full jitter on its upper half."""
    ceiling = min(cap, interval * 2 ** min(failures, 20))
    return ceiling / 2 + rand() * ceiling / 2


def poll_delay(interval: float, rand: Callable[[], float] = random.random) -> float:
    """The poll interval with ±10% jitter, so replicas do not poll in step."""
    return interval * (0.9 + 0.2 * rand())


class Daemon:
    """Runs sync passes until stopped, applying the failure policy."""

    def __init__(self, syncer: Syncer, stop: threading.Event | None = None,
                 clock: Callable[[], float] = time.time,
                 wait: Callable[[float], object] | None = None,
                 rand: Callable[[], float] = random.random,
                 cluster: Cluster | None = None, follower: Follower | None = None):
        self.syncer = syncer
        self.cluster, self.follower = cluster, follower  # None outside a cluster
        self.config = syncer.config
        self.stop = stop or threading.Event()
        self.clock = clock
        self.heartbeat = self._started = clock()
        self.wake = threading.Event()
        self._wait = wait or self.wake.wait
        self._rand = rand
        self.retry_after = 0.0  # what the registry last asked us to wait, if anything
        self._pass_started = float("-inf")
        self._leader_failing_since: float | None = None
        self._not_following = ""  # why the last follower pass did not follow the Lease
        self._polled = self._urgent = False  # why `wake` is set: poll_now, or wake_now
        syncer.on_progress = self.beat

    def beat(self) -> None:
        """The loop is alive and making progress."""
        self.heartbeat = self.clock()

    @property
    def state(self) -> state.SyncState:
        """The syncer's state, shown by /status."""
        return self.syncer.state

    def has_good_snapshot(self) -> bool:
        """True when `current` points at a snapshot with a readable manifest."""
        return snapshot.read_current(self.config.model_root) is not None

    def surely_without_snapshot(self) -> bool:
        """True only when surely nothing is published (never on a shortage of descriptors)."""
        return snapshot.surely_unpublished(self.config.model_root)

    def run_once(self) -> Outcome | None:
        """One pass with bookkeeping; None if it failed (the error is in the state)."""
        started = self._pass_started = self.clock()
        self.state.last_attempt_at = started
        try:
            outcome = self._pass()
        except Stopped:
            log.info("sync_abandoned", reason="stop requested")
            return None
        except ConfigError:
            raise
        except (RegistrySyncError, OSError) as exc:
            self._failed(exc)
            return None
        except Exception as exc:  # the loop must outlive a bug while a snapshot is served
            log.error("sync_crashed", error_type=type(exc).__name__, error=str(exc),
                      exc_info=exc)
            self._failed(exc, logged=True)
            return None
        finally:
            self.heartbeat = self.clock()
            self.syncer.metrics.duration.observe(max(0.0, self.clock() - started))
        self._succeeded(outcome)
        return outcome

    def _pass(self) -> Outcome:
        """Standalone or leader: poll the registry (a leader then announces); follower: install."""
        if self.cluster is None or self.follower is None:
            return self.syncer.sync_once()
        leading = self.cluster.is_leader()
        self.syncer.metrics.leader.set(1 if leading else 0)
        if leading:
            return self._lead()
        self._leader_failing_since = None
        decided = self.cluster.decision()
        why = self.cluster.why_not(decided)
        if why != self._not_following:
            self._not_following = why
            (log.warning if why else log.info)("decision_not_followed" if why else
                                               "decision_followed_again", reason=why)
        if why:
            return self.syncer.sync_once()  # the Lease is not to be trusted now: ask the registry
        if decided is not None:
            return self.follower.sync_to(decided, self.cluster.peer_for(decided))
        if not self.has_good_snapshot() and self.clock() - self._started > (
                self.cluster.settings.lease_duration):
            return self.syncer.sync_once()  # no leader for a lease: never start without a model
        return Outcome("waiting", "no decision from the leader yet")

    def _lead(self) -> Outcome:
        """A leader's pass, published only while still leading; steps down if failing long."""
        assert self.cluster is not None  # only a member of a cluster leads
        self.syncer.may_publish = self.cluster.is_leader
        try:
            outcome = self.syncer.sync_once()
        except (RegistrySyncError, OSError) as exc:
            if not isinstance(exc, (LeadershipLost, Stopped)):
                self._leader_failed()
            raise
        finally:
            self.syncer.may_publish = lambda: True
        self._leader_failing_since = None
        current = snapshot.read_current(self.config.model_root)
        # With the guard, "rejected" too: `current` (where a rollback went) stays the decision,
        # confirmed, so that no follower goes to Comet and installs the set the guard refused.
        kinds = ("published", "unchanged", "rejected") if self.syncer.guard else (
            "published", "unchanged")
        if current is not None and outcome.kind in kinds:
            handed = guard_rollback.handed_over(self.state.memory) if self.syncer.guard else ()
            self.cluster.announce(current, self._challenger(), handed)
        return outcome

    def _leader_failed(self) -> None:
        """Count a leader's failed pass; past LEADER_STEP_DOWN_AFTER, hand the Lease over."""
        now = self.clock()
        if self._leader_failing_since is None:
            self._leader_failing_since = now
        elif now - self._leader_failing_since >= self.config.step_down_after:
            log.warning("leader_stepped_down", failing_for=round(now - self._leader_failing_since),
                        reason="every pass failed for LEADER_STEP_DOWN_AFTER")
            self._leader_failing_since = None
            assert self.cluster is not None
            self.cluster.elector.step_down()

    def _challenger(self) -> Manifest | None:
        """The snapshot `candidate` links, when this sidecar follows a challenger."""
        if self.syncer.candidates is None:
            return None
        root = self.config.model_root
        return snapshot.trusted(root, layout.candidate_snapshot_id(root))

    def _succeeded(self, outcome: Outcome) -> None:
        self.retry_after = 0.0
        metrics, current = self.syncer.metrics, self.state
        metrics.attempts.labels(outcome=outcome.kind).inc()
        metrics.last_success.set(self.clock())
        metrics.failures.set(0)
        current.consecutive_failures = 0
        current.last_success_at = self.clock()
        current.last_error = None
        if self.cluster is not None and self.cluster.elector.sitting_out.is_set():
            log.info("leader_election_rejoined", reason="a pass succeeded")
            self.cluster.elector.rejoin()
        event = log.info if outcome.kind in ("unchanged", "published") else log.warning
        event("sync_finished", outcome=outcome.kind, detail=outcome.detail,
              snapshot=outcome.snapshot_id)
        self._save()

    def _failed(self, exc: BaseException, logged: bool = False) -> None:
        self.retry_after = getattr(exc, "retry_after", None) or 0.0
        current = self.state
        current.consecutive_failures += 1
        current.last_error = {"type": type(exc).__name__, "message": logs.mask(str(exc)),
                              "at": self.clock()}
        self.syncer.metrics.attempts.labels(outcome="failed").inc()
        self.syncer.metrics.failures.set(current.consecutive_failures)
        if not logged:
            log.error("sync_failed", error_type=type(exc).__name__, error=str(exc),
                      consecutive_failures=current.consecutive_failures)
        if self.syncer.reporter:
            self.syncer.reporter.sync_failing(logs.mask(str(exc)), current.consecutive_failures)
        self._save()

    def _save(self) -> None:
        try:
            self.syncer.save_state()
        except OSError as exc:
            log.warning("state_not_saved", error=str(exc))

    def run(self) -> int:
        """Loop until stopped; the exit code follows the failure policy."""
        self.config.model_root.mkdir(parents=True, exist_ok=True)
        snapshot.clean_staging(self.config.model_root)
        log.info("sync_started", models=list(self.config.models), status=self.config.status,
                 interval=self.config.interval, registry=self.config.registry_url,
                 leader_election=self.cluster is not None)
        if self.cluster is not None:
            self._started = self.clock()  # the lease duration counts from the election's start
            self.cluster.start(self.stop)
        while not self.stop.is_set():
            outcome = self.run_once()
            failures = self.state.consecutive_failures
            if outcome is None and failures and self._should_give_up(failures):
                return EXIT_FAILED
            delay = (backoff_delay(failures, self.config.interval, self.config.max_backoff,
                                   self._rand)
                     if failures else poll_delay(self.config.interval, self._rand))
            # the registry's hint may be huge or infinite: never wait longer than the cap
            delay = min(max(delay, self.retry_after), self.config.max_backoff)
            self.heartbeat = self.clock()
            if not self.stop.is_set():
                self._wait(delay)
                self._space_wakeups()
            self.wake.clear()
        snapshot.clean_staging(self.config.model_root)
        if self.cluster is not None:
            self.cluster.close()
        log.info("sync_stopped")
        return EXIT_OK

    def _space_wakeups(self) -> None:
        """A pass woken by poll_now starts no sooner than POLL_NOW_MIN_INTERVAL after the
        previous one; a change of leadership or decision (wake_now) starts it at once."""
        if self.wake.is_set() and self._polled:
            early = self._pass_started + self.config.poll_now_min_interval - self.clock()
            until = time.monotonic() + max(0.0, early)
            while not self._urgent and not self.stop.is_set() and time.monotonic() < until:
                self.stop.wait(max(0.0, min(0.1, until - time.monotonic())))
        self._polled = self._urgent = False

    def _should_give_up(self, failures: int) -> bool:
        limit = self.config.init_max_failures
        if limit == 0 or failures < limit or not self.surely_without_snapshot():
            return False
        log.error("sync_gave_up", consecutive_failures=failures,
                  reason="no good snapshot yet and INIT_MAX_FAILURES reached",
                  error=(self.state.last_error or {}).get("message"))
        return True

    def poll_now(self) -> None:
        """A webhook's wake-up: poll soon with fresh facts, merged and spaced (at the leader)."""
        self.syncer.registry.expire()
        if self.cluster is None or self.cluster.poll_now():
            self._polled = True
            self.wake.set()

    def wake_now(self) -> None:
        """Something changed (leadership, a decision): the next pass starts at once."""
        self._urgent = True
        self.wake.set()

    def request_stop(self) -> None:
        """Stop after the current step (called from the SIGTERM handler)."""
        self.stop.set()
        self.wake.set()
