"""Pure helpers of the local registry: version order, body alteration, rule parsing."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from local_registry import faults, store


def test_newest_first_by_created_at_then_semver():
    """createdAt decides; on a tie, the higher semver (a release above its pre-release) wins."""
    versions = [{"version": v, "createdAt": t} for v, t in [
        ("1.0.0", 5), ("1.0.0-rc.1", 5), ("1.10.0", 5), ("1.9.0", 5), ("9.0.0", 1)]]
    assert [v["version"] for v in store.newest_first(versions)] == [
        "1.10.0", "1.9.0", "1.0.0", "1.0.0-rc.1", "9.0.0"]


@given(st.binary(min_size=1, max_size=3000), st.integers(1, 500), st.integers(0, 3000))
def test_cut_after_sends_exactly_that_prefix(body, chunk, cut):
    """However the body is chunked, a cut yields exactly its first cut_after bytes."""
    chunks = [body[i:i + chunk] for i in range(0, len(body), chunk)]
    rule = faults.Rule(path="x", cut_after=cut)
    assert b"".join(faults.alter_body(chunks, rule, len(body))) == body[:cut]


@given(st.binary(min_size=1, max_size=3000), st.integers(1, 500))
def test_corrupt_flips_exactly_the_middle_byte(body, chunk):
    """Corruption keeps the length and changes only the byte in the middle."""
    chunks = [body[i:i + chunk] for i in range(0, len(body), chunk)]
    altered = b"".join(faults.alter_body(chunks, faults.Rule(path="x", corrupt=True), len(body)))
    assert len(altered) == len(body)
    assert [i for i in range(len(body)) if altered[i] != body[i]] == [len(body) // 2]


def test_drip_sleeps_in_proportion_to_size():
    """Dripping 1000 bytes at 500 B/s sleeps two seconds in all (with an injected sleep)."""
    slept: list[float] = []
    rule = faults.Rule(path="x", drip_bps=500)
    out = b"".join(faults.alter_body([b"a" * 1000], rule, 1000, sleep=slept.append))
    assert out == b"a" * 1000 and sum(slept) == pytest.approx(2.0)


def test_file_size_delta_reaches_nested_assets():
    """Every fileSize, however deep, is shifted; nothing else changes."""
    body = {"versions": [{"assets": [{"fileSize": 10, "fileName": "a"}]}], "fileSize": 1}
    shifted = json.loads(faults.add_to_file_sizes(json.dumps(body).encode(), -3))
    assert shifted == {"versions": [{"assets": [{"fileSize": 7, "fileName": "a"}]}], "fileSize": -2}


def test_rules_expire_after_times_and_match_by_method():
    """A rule is taken `times` times, only for its method, then it is gone."""
    live = faults.Faults()
    live.add([faults.Rule(path="details", method="GET", status=500, times=2)])
    assert live.take("POST", "/api/rest/v2/registry-model/details", lambda: None) is None
    taken = [live.take("GET", "/api/rest/v2/registry-model/details", lambda: None)
             for _ in range(3)]
    assert [r is not None for r in taken] == [True, True, False]
    assert live.listing() == []


@pytest.mark.parametrize("data", [
    [], {"path": 3}, {"path": "x", "status": True}, {"path": "x", "status": 700},
    {"path": "x", "drip_bps": 0}, {"path": "x", "retry_after": -1},
])
def test_bad_rules_raise_value_error(data):
    """Malformed rules are refused with a ValueError."""
    with pytest.raises(ValueError):
        faults.Rule.from_json(data)
