"""The challenger's figures, canary buckets, the guard and the verdict's figures (pure)."""

from __future__ import annotations

import pytest

from serving.challenger.canary import CanaryGuard, bucket_of, in_canary
from serving.challenger.comparison import ComparisonLog, Sample, probability_gap
from serving.challenger.experiment_log import METRIC_PATH, metric_url
from serving.config import ChallengerConfig


def test_the_gap_is_taken_on_the_champions_label():
    assert probability_gap(("Gold", 0.9), ("Gold", 0.7), 2) == pytest.approx(0.2)
    assert probability_gap(("Gold", 0.9), ("Silver", 0.6), 2) == pytest.approx(0.5)
    # more classes: the challenger's own probability of the champion's label, when given
    assert probability_gap(("Fair", 0.5), ("Good", 0.4), 5, of_label=0.3) == pytest.approx(0.2)
    assert probability_gap(("Fair", 0.5), ("Good", 0.4), 5) == pytest.approx(0.1)


def test_the_window_keeps_the_latest_and_the_total_keeps_everything():
    log = ComparisonLog(window=2)
    for sample in (Sample(0.001, agreed=False, gap=0.4), Sample(0.002, agreed=True, gap=0.0),
                   Sample(0.003, failed=True)):
        log.add(sample)
    window, total = log.figures()
    assert (window.samples, window.compared, window.agreement, window.errors) == (2, 1, 1.0, 1)
    assert (total.samples, total.compared, total.agreement) == (3, 2, 0.5)
    assert total.mean_abs_probability_diff == pytest.approx(0.2)
    assert total.error_rate == pytest.approx(1 / 3)


def test_a_client_key_stays_in_its_bucket_and_shares_grow_monotonically():
    assert bucket_of("client-7") == bucket_of("client-7")
    keys = [f"k{i}" for i in range(2000)]
    at_10 = {k for k in keys if in_canary(k, 10)}
    at_30 = {k for k in keys if in_canary(k, 30)}
    assert at_10 <= at_30, "raising the share never moves a canary client back"
    assert not any(in_canary(k, 0) for k in keys) and all(in_canary(k, 100) for k in keys)


def test_the_guard_waits_for_enough_answers_then_trips_once():
    guard = CanaryGuard(ChallengerConfig(guard_window=10, guard_min_answers=4,
                                         guard_max_error_rate=0.2), "snap-1")
    for _ in range(3):
        guard.record(Sample(0.001, failed=True))
    assert guard.trip is None, "three answers are not enough to judge"
    guard.record(Sample(0.001, failed=True))
    first = guard.trip
    assert first is not None and "error rate 100.0%" in first.reason
    guard.record(Sample(0.001, failed=True))
    assert guard.trip is first


def test_the_verdict_reaches_the_server_root_of_a_clientlib_override():
    assert metric_url(ChallengerConfig(url="http://127.0.0.1:5050/clientlib/")) == \
        "http://127.0.0.1:5050" + METRIC_PATH
    assert metric_url(ChallengerConfig()) == "https://www.comet.com" + METRIC_PATH
