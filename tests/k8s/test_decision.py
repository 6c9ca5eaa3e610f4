"""The decided version set on the Lease: written only by the holder, followed through a watch."""

from __future__ import annotations

import dataclasses
import json
import queue
import re
import threading

import pytest

from devkit.cluster import DECISION_KEY, sealed
from model_contract.manifest import FileEntry, ModelEntry
from registry_sync.cluster import decision
from registry_sync.cluster.decision import DecidedSet, Decision, DecisionError
from registry_sync.cluster.decision_refusals import HandedRefusal
from registry_sync.cluster.decision_watch import DecisionWatcher
from registry_sync.cluster.election import ElectionSettings, Elector
from tests.support.kube import LEASE, NAMESPACE

DIGEST = "ab" * 32


def entry(version: str, status: str = "Production") -> ModelEntry:
    """One decided model at a version."""
    return ModelEntry("ws", "diamonds-classifier", version, f"item-{version}", status,
                      "a1b2c3", (FileEntry("model.pkl", 1234, DIGEST),))


def decided(version: str, candidate: str | None = None) -> Decision:
    """A decision of one model at a version, with a Staging challenger if `candidate` is given."""
    challenger = None if candidate is None else DecidedSet(f"snap-{candidate}",
                                                           (entry(candidate, "Staging"),))
    return Decision(f"snap-{version}", (entry(version),), "pod-a", "http://10.1.2.3:8090",
                    candidate=challenger)


@pytest.fixture
def follower(lease):
    """A DecisionWatcher on its own thread; yields the queue of what it delivered."""
    seen: queue.Queue[Decision] = queue.Queue()
    stop = threading.Event()
    watcher = DecisionWatcher(lease(), lambda found, _why: found and seen.put(found),
                              DECISION_KEY.encode, f"{NAMESPACE}/{LEASE}", watch_timeout=30,
                              retry=0.1)
    thread = threading.Thread(target=watcher.run, args=(stop,), daemon=True)
    thread.start()
    yield seen
    stop.set()
    watcher.stop()
    thread.join(10)


def test_a_decision_survives_the_annotation_round_trip():
    """What the leader writes is what a follower reads."""
    sent = decided("1.2.0")
    assert decision.parse(sent.to_annotation()) == sent


def test_a_decision_too_large_for_the_lease_is_written_without_its_file_lists():
    """Thousands of files: the versions still go on the Lease, marked for Comet downloads."""
    many = tuple(FileEntry(f"shard-{i:05}.bin", i, DIGEST) for i in range(3000))
    big = decided("1.2.0")
    big = Decision(big.snapshot_id, (dataclasses.replace(big.models[0], files=many),),
                   big.leader, big.peer_url)
    text = big.to_annotation()
    assert len(text) <= decision.MAX_ANNOTATION_BYTES
    read_back = decision.parse(text)
    assert read_back.key == big.key and read_back.files_listed is False
    assert read_back.models[0].files == ()


def test_a_decision_carries_the_candidate_set_when_there_is_one():
    """The challenger goes on the Lease with the champion; a decision without it has none."""
    sent = decided("1.2.0", candidate="1.3.0")
    read_back = decision.parse(sent.to_annotation())
    assert read_back == sent
    assert read_back.candidate.versions == {"diamonds-classifier": "1.3.0"}
    assert read_back.candidate.models[0].files == (FileEntry("model.pkl", 1234, DIGEST),)
    assert read_back.identity != decided("1.2.0").identity  # a new candidate is a new decision
    older = json.loads(decided("1.2.0").to_annotation())
    assert "candidate" not in older  # what a leader without a challenger (or older) writes
    assert decision.parse(json.dumps(older)).candidate is None


def test_a_decision_too_large_drops_the_candidate_file_lists_too():
    """Omitted file lists cover both sets: followers download both from Comet."""
    many = tuple(FileEntry(f"shard-{i:05}.bin", i, DIGEST) for i in range(3000))
    big = decided("1.2.0", candidate="1.3.0")
    big = dataclasses.replace(big, candidate=DecidedSet(
        big.candidate.snapshot_id, (dataclasses.replace(big.candidate.models[0], files=many),)))
    read_back = decision.parse(big.to_annotation())
    assert read_back.files_listed is False and read_back.candidate.models[0].files == ()
    assert read_back.candidate.key == big.candidate.key


@pytest.mark.parametrize(("change", "named"), [
    (lambda c: c["models"][0]["files"][0].update(path="../../etc/cron.d/x"),
     "candidate.models[0].files[0].path"),
    (lambda c: c["models"][0]["files"][0].update(sha256="f00"),
     "candidate.models[0].files[0].sha256"),
    (lambda c: c["models"][0].update(registryModelItemId="a/b"),
     "candidate.models[0].registryModelItemId"),
    (lambda c: c.update(snapshotId="../current"), "candidate.snapshotId"),
    (lambda c: c.update(models="all"), "candidate.models is not a list"),
    (lambda c: c["models"].append(c["models"][0]), "candidate.models has 2 entries"),
    (lambda c: c["models"][0].update(name="other-model"), "does not name the decision's"),
])
def test_a_malformed_candidate_is_refused_naming_the_field(change, named):
    """The candidate is as untrusted as the rest: path, hash, names, bounded by the models."""
    raw = json.loads(decided("1.2.0", candidate="1.3.0").to_annotation())
    change(raw["candidate"])
    with pytest.raises(DecisionError, match=re.escape(named)):
        decision.parse(json.dumps(raw))


@pytest.mark.parametrize(("change", "named"), [
    (lambda m: m["files"][0].update(path="../../etc/cron.d/x"), "path"),
    (lambda m: m["files"][0].update(path="/etc/passwd"), "path"),
    (lambda m: m["files"][0].update(sha256="f00"), "sha256"),
    (lambda m: m["files"][0].update(size=-1), "size"),
    (lambda m: m.update(name="../x"), "name"),
])
def test_a_malformed_decision_is_refused_naming_the_field(change, named):
    """A follower never writes where a decision's path points outside its snapshot."""
    raw = json.loads(decided("1.2.0").to_annotation())
    change(raw["models"][0])
    with pytest.raises(DecisionError, match=named):
        decision.parse(json.dumps(raw))


def test_the_guards_refusals_ride_in_the_decision_for_the_next_leader():
    """A rolled-back set and its reason survive the round trip; absent means none."""
    refused = (HandedRefusal((("diamonds-classifier", "1.3.0", "item-1.3.0"),),
                             "rolled back by the promotion guard: error rate 30%"),)
    sent = dataclasses.replace(decided("1.2.0"), refused=refused)
    assert decision.parse(sent.to_annotation()).refused == refused
    assert decision.parse(decided("1.2.0").to_annotation()).refused == ()


@pytest.mark.parametrize(("refused", "named"), [
    ("all", "refused is not a list"),
    ([{"models": [["m", "1.0.0", "i"]], "reason": "r"}] * 9, "at most 8"),
    ([{"models": [["../m", "1.0.0", "i"]], "reason": "r"}], "refused[0].models[0]"),
    ([{"models": [["m", "latest", "i"]], "reason": "r"}], "refused[0].models[0]"),
    ([{"models": [], "reason": "r"}], "refused[0].models"),
    ([{"models": [["m", "1.0.0", "i"]], "reason": "x" * 501}], "refused[0].reason"),
    ([{"models": [["m", "1.0.0", "i"]], "reason": "a\x1b[2J"}], "refused[0].reason"),
    ([{"models": [["m", "1.0.0", "i"], ["m", "1.1.0", "j"]], "reason": "r"}], "twice"),
])
def test_malformed_refusals_are_refused_naming_the_field(refused, named):
    """Handed-over refusals are bounded and checked like the rest of the decision."""
    raw = json.loads(decided("1.2.0").to_annotation())
    raw["refused"] = refused
    with pytest.raises(DecisionError, match=re.escape(named)):
        decision.parse(json.dumps(raw))


def test_only_the_holder_writes_the_decision(lease):
    """A deposed leader's write is refused; the decision on the Lease stays the holder's."""
    class Clock:
        now = 1000.0

        def __call__(self) -> float:
            return self.now

    clock_a, clock_b = Clock(), Clock()
    a = Elector(lease(), ElectionSettings(NAMESPACE, LEASE, "pod-a"), clock=clock_a)
    b = Elector(lease(), ElectionSettings(NAMESPACE, LEASE, "pod-b"), clock=clock_b)
    assert a.try_acquire_or_renew()
    assert a.annotate({decision.DECISION_ANNOTATION: decided("1.0.0").to_annotation()})
    assert not b.annotate({decision.DECISION_ANNOTATION: decided("9.9.9").to_annotation()})
    b.try_acquire_or_renew()
    clock_b.now += 16
    assert b.try_acquire_or_renew()
    assert b.annotate({decision.DECISION_ANNOTATION: decided("2.0.0").to_annotation()})
    clock_a.now += 11
    assert not a.annotate({decision.DECISION_ANNOTATION: decided("1.0.1").to_annotation()})
    assert decision.read(lease().get()).versions == {"diamonds-classifier": "2.0.0"}


def _write(api, version: str, candidate: str | None = None) -> None:
    """The leader's write, made straight in the stand-in's store (so it works in an outage)."""
    body = {"metadata": {"name": LEASE}, "spec": {"holderIdentity": "pod-a"}}
    if (NAMESPACE, LEASE) not in api.leases.objects:
        api.leases.create(NAMESPACE, body)
    body = api.leases.get(NAMESPACE, LEASE)
    body["metadata"]["annotations"] = {
        decision.DECISION_ANNOTATION: sealed(decided(version, candidate).to_annotation())}
    api.leases.update(NAMESPACE, LEASE, body)


def test_a_follower_learns_each_new_decision_through_the_watch(api, lease, follower):
    """The decision present at start, then each change: delivered once each, in order."""
    _write(api, "1.0.0")
    assert follower.get(timeout=10).versions == {"diamonds-classifier": "1.0.0"}
    _write(api, "1.1.0")
    assert follower.get(timeout=10).versions == {"diamonds-classifier": "1.1.0"}
    assert api.sent("GET", "leases?") and follower.empty()


def test_a_new_candidate_alone_is_a_new_decision_for_followers(api, lease, follower):
    """Champion unchanged, a challenger appears then goes: each delivered, once."""
    _write(api, "1.0.0")
    assert follower.get(timeout=10).candidate is None
    _write(api, "1.0.0", candidate="1.1.0")
    assert follower.get(timeout=10).candidate.versions == {"diamonds-classifier": "1.1.0"}
    _write(api, "1.0.0", candidate="1.1.0")
    _write(api, "1.0.0")
    assert follower.get(timeout=10).candidate is None
    assert follower.empty()


def test_a_broken_watch_resumes_after_stream_ends_outages_and_410(api, lease, follower):
    """Closed streams, an API server answering 503, then a compacted history: nothing lost."""
    _write(api, "1.0.0")
    assert follower.get(timeout=10).versions == {"diamonds-classifier": "1.0.0"}
    api.leases.close_watches()
    _write(api, "1.1.0")
    assert follower.get(timeout=10).versions == {"diamonds-classifier": "1.1.0"}
    api.fail_with = 503
    api.leases.close_watches()
    watches = api.watches
    _write(api, "1.2.0")  # written behind the outage, straight into the store
    threading.Event().wait(0.5)
    assert follower.empty()
    api.fail_with = None
    assert follower.get(timeout=10).versions == {"diamonds-classifier": "1.2.0"}
    api.leases.compact()
    api.leases.close_watches()
    _write(api, "1.3.0")
    assert follower.get(timeout=10).versions == {"diamonds-classifier": "1.3.0"}
    assert api.watches > watches


def _junk(rand) -> object:
    """A value of any JSON type, sometimes nested deep."""
    return rand.choice([None, True, -1, 2**70, 1.5, float("nan"), "", "x" * 2000, "../..",
                        [], {}, [1], {"a": {}}, "[" * 3, [[[[[[]]]]]], {"models": []}])


def _mutate(raw: object, rand) -> object:
    """raw with one random subtree replaced by junk (or an entry dropped)."""
    if isinstance(raw, dict) and raw and rand.random() < 0.8:
        key = rand.choice(sorted(raw))
        if rand.random() < 0.2:
            return {k: v for k, v in raw.items() if k != key}
        return {**raw, key: _mutate(raw[key], rand)}
    if isinstance(raw, list) and raw and rand.random() < 0.8:
        at = rand.randrange(len(raw))
        return [*raw[:at], _mutate(raw[at], rand), *raw[at + 1:]]
    return _junk(rand)


def test_any_mangled_decision_is_a_decision_error_never_another_exception():
    """3,000 random manglings of a good decision: each parses or is a DecisionError."""
    import random

    rand = random.Random(24)
    good = json.loads(decided("1.2.0", candidate="1.3.0").to_annotation())
    outcomes = {"parsed": 0, "refused": 0}
    for _ in range(3000):
        text = json.dumps(_mutate(_mutate(good, rand), rand))
        try:
            decision.parse(text)
            outcomes["parsed"] += 1
        except DecisionError:
            outcomes["refused"] += 1
    assert outcomes["refused"] > 2000
    with pytest.raises(DecisionError, match="not JSON"):
        decision.parse("[" * 100_000)


def test_a_seal_binds_the_key_the_lease_and_every_byte():
    """Another key, another Lease, a changed byte or no seal: refused; the right one opens."""
    from registry_sync.cluster.decision_seal import seal, unseal

    text, key, lease = decided("1.2.0").to_annotation(), b"k" * 32, "ns/name"
    assert unseal(seal(text, key, lease), key, lease) == text
    for value, with_key, binding in [(seal(text, b"x" * 32, lease), key, lease),
                                     (seal(text, key, "ns/other"), key, lease),
                                     (seal(text, key, lease).replace("1.2.0", "6.6.6"), key,
                                      lease),
                                     (text, key, lease), (seal(text, key, lease), b"", lease)]:
        with pytest.raises(DecisionError):
            unseal(value, with_key, binding)
