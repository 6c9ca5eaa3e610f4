"""Leader election and the Lease stand-in, through the official client over real HTTP."""

from __future__ import annotations

import re
import threading
from datetime import UTC, datetime

import pytest

from registry_sync.cluster.election import ElectionSettings, Elector, LeaseConflict, LeaseRecord
from registry_sync.cluster.lease_api import WatchExpired
from tests.support.kube import LEASE, NAMESPACE

MICRO_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")


class Clock:
    """A monotonic clock a test advances by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def elector(lease, identity: str, clock: Clock) -> Elector:
    """An elector with the default durations (15 s lease, 10 s renew deadline)."""
    return Elector(lease(), ElectionSettings(NAMESPACE, LEASE, identity), clock=clock)


def test_the_lease_is_kept_as_the_api_server_keeps_it(api, lease):
    """MicroTime renewTime, RFC 3339 creationTimestamp, resourceVersion growing on each write."""
    store = lease()
    sent = datetime(2026, 11, 29, 1, 2, 3, 450000, tzinfo=UTC).isoformat()
    created = store.create(LeaseRecord("pod-a", 15, sent, sent))
    raw = api.leases.get(NAMESPACE, LEASE)
    assert raw["spec"]["renewTime"] == "2026-11-29T01:02:03.450000Z"
    assert MICRO_TIME.match(raw["spec"]["acquireTime"])
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$", raw["metadata"]["creationTimestamp"])
    renewed = store.replace(created)
    assert int(renewed.resource_version) > int(created.resource_version)
    assert raw["metadata"]["uid"] == api.leases.get(NAMESPACE, LEASE)["metadata"]["uid"]


def test_a_stale_update_is_refused_with_a_conflict(lease):
    """Of two writers holding the same resourceVersion, the second gets 409."""
    store = lease()
    first = store.create(LeaseRecord("pod-a", 15))
    store.replace(first)
    with pytest.raises(LeaseConflict):
        store.replace(first)
    with pytest.raises(LeaseConflict):
        store.create(LeaseRecord("pod-b", 15))


def test_a_watch_sends_changes_and_bookmarks_and_ends_when_closed(api, lease):
    """MODIFIED for a write, BOOKMARKs while idle; a closed stream ends the iteration."""
    store = lease()
    created = store.create(LeaseRecord("pod-a", 15))
    api.leases.bookmark_interval = 0.2
    seen: list[tuple[str, str]] = []

    def follow() -> None:
        for kind, record, version in lease().watch(created.resource_version, 30):
            seen.append((kind, record.holder if record else version))
            if sum(kind == "BOOKMARK" for kind, _ in seen) >= 2:
                api.leases.close_watches()

    reader = threading.Thread(target=follow)
    reader.start()
    store.replace(LeaseRecord("pod-b", 15, resource_version=created.resource_version))
    reader.join(20)
    assert not reader.is_alive()
    assert seen[0] == ("MODIFIED", "pod-b")
    assert ("BOOKMARK", str(api.leases.revision)) in seen


def test_a_watch_from_a_compacted_version_is_gone(api, lease):
    """A resourceVersion older than the kept history: 410, so the client must list again."""
    store = lease()
    created = store.create(LeaseRecord("pod-a", 15))
    store.replace(created)
    api.leases.compact()
    with pytest.raises(WatchExpired):
        list(store.watch(created.resource_version, 5))


def test_one_leader_takes_over_from_another_after_the_lease_duration(api, lease):
    """A holder that stops renewing loses the Lease one lease duration later, not before."""
    clock_a, clock_b = Clock(), Clock()
    a, b = elector(lease, "pod-a", clock_a), elector(lease, "pod-b", clock_b)
    assert a.try_acquire_or_renew() and not b.try_acquire_or_renew()
    clock_b.now += 14
    assert not b.try_acquire_or_renew()
    clock_b.now += 2
    assert b.try_acquire_or_renew()
    clock_a.now += 10  # a, frozen all along, wakes up: its renew deadline has passed
    assert not a.is_leader()
    assert not a.annotate({"registry-sync.comet.com/decision": "{}"})
    assert not a.try_acquire_or_renew()
    held = api.leases.get(NAMESPACE, LEASE)["spec"]
    assert (held["holderIdentity"], held["leaseTransitions"]) == ("pod-b", 1)


def test_a_released_lease_is_taken_at_once(lease):
    """Stopping a leader hands over without waiting for the lease to expire."""
    a, b = elector(lease, "pod-a", Clock()), elector(lease, "pod-b", Clock())
    assert a.try_acquire_or_renew()
    a.release()
    assert not a.is_leader()
    assert b.try_acquire_or_renew()


def _race(candidates: list[Elector]) -> None:
    """Every candidate tries at the same instant."""
    barrier = threading.Barrier(len(candidates))

    def attempt(candidate: Elector) -> None:
        barrier.wait()
        candidate.try_acquire_or_renew()

    threads = [threading.Thread(target=attempt, args=(c,)) for c in candidates]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)


def test_racing_candidates_never_both_lead(api, lease):
    """Six candidates racing, ten rounds, the leader frozen now and then: never two leaders."""
    clocks = [Clock() for _ in range(6)]
    candidates = [elector(lease, f"pod-{i}", clocks[i]) for i in range(6)]
    frozen: Elector | None = None
    for round_ in range(10):
        _race([c for c in candidates if c is not frozen])
        leaders = [c for c in candidates if c.is_leader()]
        assert len(leaders) <= 1, f"round {round_}: {[c.settings.identity for c in leaders]}"
        frozen = None
        if round_ % 3 == 1 and leaders:  # the leader freezes: the others see its last
            frozen = leaders[0]  # renewal, then their clocks pass the lease duration
            _race([c for c in candidates if c is not frozen])
            assert [c for c in candidates if c.is_leader()] == [frozen]
            for clock in clocks:
                clock.now += 16
    assert len(api.leases.holders()) >= 3
