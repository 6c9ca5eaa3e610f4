"""The promotion guard's judgement, on figures serving really exports (issue 29).

Serving's champion metrics are counted with serving.telemetry.champion_metrics in this process and
read by the guard over HTTP on loopback, from a tiny server that answers /metrics with their text
(standing in for serving's admin port; it leaves out everything but that one endpoint).
"""

from __future__ import annotations

import argparse
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace

import pytest

from model_contract import layout
from model_contract.manifest import Manifest, ModelEntry, version_set
from registry_sync import commands, config
from registry_sync.errors import ConfigError
from registry_sync.guard.figures import Check, Figures, Thresholds, judge, parse, quantile
from registry_sync.guard.watch import GuardSettings, PromotionGuard, serving_reader
from serving.telemetry import champion_metrics
from serving.telemetry import metrics as serving_metrics

LIMITS = Thresholds(min_requests=50)
BASE = {"MODEL_ROOT": "/tmp/models", "REGISTRY_MODELS": "m", "COMET_WORKSPACE": "ws",
        "COMET_API_KEY": "k3y-secret"}


def model(snapshot: str, classes=("Gold", "Silver")) -> SimpleNamespace:
    """What champion_metrics reads of a served model (version `snapshot` of model `m`)."""
    return SimpleNamespace(snapshot=snapshot, versions={"m": snapshot},
                           schema=SimpleNamespace(classes=classes))


def published(snapshot: str) -> Manifest:
    """The manifest the sidecar publishes for model()'s snapshot."""
    return Manifest(snapshot, "2026-12-07T00:00:00Z",
                    (ModelEntry("ws", "m", snapshot, "item", "Production", "exp"),))


def serve(served, requests: int, seconds: float, classes=("Gold", "Silver"), failing: int = 0,
          labels=None) -> None:
    """Count requests as serving's champion path does (a class each, in turn)."""
    for i in range(requests):
        if i < failing:
            champion_metrics.failed(served)
            continue
        champion_metrics.answered(served, seconds, [labels[i % len(labels)] if labels
                                                    else classes[i % len(classes)]])


def figures(snapshot: str) -> Figures:
    text = serving_metrics.render(None)[0].decode()
    return parse(text.splitlines()).get(version_set({"m": snapshot}), Figures())


def test_the_figures_read_back_what_serving_counted():
    served = model("fig-1")
    serve(served, 100, 0.003, failing=10)
    found = figures("fig-1")
    assert (found.ok, found.failed) == (90, 10)
    assert found.error_rate() == pytest.approx(0.1)
    assert 0.002 <= found.p95() <= 0.004  # within its power-of-two bucket
    assert version_set({"m": "fig-1"}) == published("fig-1").version_set  # one name, both sides
    assert found.shares() == {"Gold": 0.5, "Silver": 0.5}
    assert found.since(found).requests == 0


def test_a_batchs_rows_are_counted_by_class_and_an_unknown_label_as_other():
    served = model("fig-batch")
    champion_metrics.answered(served, 0.001, ["Gold", "Silver", "Gold"] * 300)
    champion_metrics.answered(served, 0.001, ["Gold", "Bronze"])  # not a class of the model
    assert figures("fig-batch").classes == {"Gold": 601, "Silver": 300, "other": 1}


def test_a_class_name_that_is_not_plain_is_counted_as_other():
    served = model("fig-2", classes=("Gold", "<script>\nx"))
    serve(served, 4, 0.001, classes=("Gold", "<script>\nx"))
    assert figures("fig-2").classes == {"Gold": 2, "other": 2}


def test_quantile_interpolates_as_prometheus_does():
    buckets = ((0.001, 50.0), (0.002, 100.0), (float("inf"), 100.0))
    assert quantile(0.5, buckets) == pytest.approx(0.001)
    assert quantile(0.95, buckets) == pytest.approx(0.0019)
    assert quantile(0.95, ()) is None


def _figures(ok=100, failed=0, p95_bucket=0.001, shares=(0.7, 0.3)) -> Figures:
    total = ok + failed
    return Figures(ok, failed, ((p95_bucket, float(ok)), (float("inf"), float(ok))),
                   {"Gold": shares[0] * total, "Silver": shares[1] * total})


@pytest.mark.parametrize(("new", "check"), [
    (_figures(ok=70, failed=30), Check.ERROR_RATE),
    (_figures(p95_bucket=0.008), Check.LATENCY),
    (_figures(shares=(0.05, 0.95)), Check.ANSWERS),
])
def test_each_check_trips_on_its_bad_champion(new, check):
    found = judge(new, _figures(), LIMITS)
    assert found is not None and found[0] is check, found


FAST = _figures(p95_bucket=0.0001)


@pytest.mark.parametrize(("new", "old"), [
    (_figures(ok=98, failed=2), _figures()),            # 2% failed: within 5%
    (_figures(p95_bucket=0.0016), _figures()),          # 1.6x slower
    (_figures(p95_bucket=0.0005), FAST),                # 5x slower, but under a millisecond
    (_figures(shares=(0.6, 0.4)), _figures()),          # a 10-point drift
    (_figures(ok=30, failed=19), _figures()),           # too few requests to judge
])
def test_noise_and_small_samples_do_not_trip(new, old):
    assert judge(new, old, LIMITS) is None


def test_without_a_baseline_only_the_error_rate_is_judged():
    assert judge(_figures(p95_bucket=0.5, shares=(1, 0)), Figures(), LIMITS) is None
    assert judge(_figures(ok=80, failed=20), Figures(), LIMITS)[0] is Check.ERROR_RATE


def _values(mean: float, spread: float, n: int = 200) -> Figures:
    """A regressor's window: n values of this mean and standard deviation."""
    return Figures(n, 0, ((0.001, float(n)), (float("inf"), float(n))), {},
                   (n, n * mean, n * (spread ** 2 + mean ** 2)))


@pytest.mark.parametrize(("new", "tripped"), [
    (_values(4000.0, 1500.0), False),   # the same distribution
    (_values(4300.0, 1400.0), False),   # a fifth of a spread away: traffic drifts
    (_values(4000.0, 0.0), True),       # a constant answer
    (_values(7000.0, 1500.0), True),    # shifted by two spreads
    (_values(4000.0, 6000.0), True),    # four times as spread
])
def test_a_regressor_is_judged_on_the_mean_and_spread_of_its_values(new, tripped):
    found = judge(new, _values(4000.0, 1500.0), LIMITS)
    assert (found is not None) is tripped, found
    if tripped:
        assert found[0] is Check.VALUES and "previous version's" in found[1]


def test_a_regressors_values_read_back_and_window_as_serving_counted():
    served = model("fig-values", classes=())
    champion_metrics.answered(served, 0.001, (), [1.0, 2.0, 3.0])
    champion_metrics.answered(served, 0.001, (), [-4.0])
    found = figures("fig-values")
    assert found.values == (4, 2.0, 30.0) and found.classes == {}
    mean, spread = found.value_stats()
    assert mean == pytest.approx(0.5) and spread == pytest.approx(7.25 ** 0.5)
    champion_metrics.answered(served, 0.001, (), [10.0])
    assert figures("fig-values").since(found).value_stats() == (10.0, 0.0)


@pytest.fixture
def serving_metrics_url():
    """A loopback server answering /metrics with this process's serving metrics."""
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            body = serving_metrics.render(None)[0]
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/metrics"
    server.shutdown()


def test_the_guard_trips_once_on_the_watched_snapshot_and_lets_a_good_one_pass(
        serving_metrics_url):
    now = [1000.0]
    tripped = []
    guard = PromotionGuard(GuardSettings(True, window=30, thresholds=LIMITS),
                           serving_reader(serving_metrics_url),
                           on_trip=lambda: tripped.append(1), clock=lambda: now[0])
    old, bad, good = model("g-old"), model("g-bad"), model("g-good")
    guard.sample()
    serve(old, 200, 0.001)
    now[0] += 1
    guard.watch(published("g-bad"), published("g-old"))  # g-old's window: the baseline
    assert guard.keep() == {"g-old"}  # the way back is never pruned while it may be needed
    serve(bad, 100, 0.001, failing=30)
    now[0] += 1
    guard.sample()
    trip = guard.judge()
    assert trip is not None and trip.check is Check.ERROR_RATE
    assert (trip.snapshot, trip.previous) == ("g-bad", "g-old")
    assert "error rate 30.0%" in trip.reason and tripped == [1]
    assert guard.keep() == {"g-old"}
    assert guard.take() == trip and guard.take() is None and guard.watching() is None
    guard.watch(published("g-good"), published("g-old"))
    serve(good, 200, 0.001)
    guard.sample()
    assert guard.judge() is None and guard.watching() == "g-good"
    now[0] += 31
    guard.sample()
    assert guard.judge() is None and guard.watching() is None  # passed its window


def test_a_restarted_sidecar_resumes_the_open_window_and_trips_on_it(
        serving_metrics_url, tmp_path):
    """Serving's counters outlive the sidecar: the window goes on where it was."""
    def guard() -> PromotionGuard:
        made = PromotionGuard(GuardSettings(True, window=30, thresholds=LIMITS),
                              serving_reader(serving_metrics_url))
        made.journal = tmp_path
        return made

    old, bad = model("r-old"), model("r-bad")
    first = guard()
    first.sample()
    serve(old, 200, 0.001)
    first.watch(published("r-bad"), published("r-old"))
    serve(bad, 30, 0.001)  # judged later: too few yet
    restarted = guard()
    restarted.resume("r-old")  # another snapshot is current: the window is not resumed
    assert restarted.watching() is None and not (tmp_path / layout.GUARD_WATCH).exists()
    first.watch(published("r-bad"), published("r-old"))  # (written again)
    restarted.resume("r-bad")
    assert restarted.watching() == "r-bad"
    serve(bad, 100, 0.001, failing=40)
    restarted.sample()
    trip = restarted.judge()
    assert trip is not None and trip.check is Check.ERROR_RATE and trip.previous == "r-old"
    assert not (tmp_path / layout.GUARD_WATCH).exists()  # closed: nothing left to resume
    (tmp_path / layout.GUARD_WATCH).write_text('{"snapshot": ')
    restarted.resume("r-bad")
    assert restarted.watching() is None


def test_serving_unreachable_is_skipped_not_a_trip():
    guard = PromotionGuard(GuardSettings(True), serving_reader("http://127.0.0.1:9/metrics"))
    guard.sample()
    guard.watch(published("x"), published("y"))
    assert guard.judge() is None


def test_the_guard_is_off_by_default_and_a_bad_threshold_is_named(tmp_path):
    settings = config.sync_config(argparse.Namespace(), {**BASE, "MODEL_ROOT": str(tmp_path)})
    assert settings.guard.enabled is False
    assert commands.build_daemon(settings).syncer.guard is None
    with pytest.raises(ConfigError, match=r"GUARD_MAX_ERROR_RATE.*from 0 to 1"):
        config.sync_config(argparse.Namespace(), {**BASE, "GUARD_MAX_ERROR_RATE": "2"})
    on = config.sync_config(argparse.Namespace(), {**BASE, "GUARD_ENABLED": "true",
                                                   "GUARD_WINDOW": "20"})
    assert on.guard.enabled and on.guard.window == 20 and on.guard.thresholds.min_requests == 100
    with pytest.raises(ConfigError, match="PROMETHEUS_URL"):
        config.sync_config(argparse.Namespace(), {**BASE, "PROMETHEUS_URL": "file:///etc"})


def test_a_follower_does_not_watch():
    """In a cluster only the leader judges: a follower's publication starts no window."""
    guard = PromotionGuard(GuardSettings(True), serving_reader("http://127.0.0.1:9/metrics"))
    guard.deciding = lambda: False
    guard.watch(published("x"), published("y"))
    assert guard.watching() is None


def test_a_worker_serving_many_snapshots_keeps_a_bounded_few_and_loses_no_count():
    """Past 8 snapshots the pending counts are written and forgotten, never lost."""
    for n in range(12):
        serve(model(f"many-{n}"), 3, 0.001)
    assert all(figures(f"many-{n}").ok == 3 for n in range(12))
    assert len(champion_metrics._pending) <= 8


def test_serving_shows_the_guards_last_rollback_and_nothing_from_a_bad_state_file(tmp_path):
    """/api/v1/model's `rolled_back` comes from the sidecar's state; a torn or huge file is
    nothing to show, never an error."""
    from serving.http import rollbacks

    state = tmp_path / layout.STATE
    refusals = [{"by": "serving", "reason": "golden", "versions": {"m": "1.1.0"}, "at": 1.0},
                {"by": "guard", "reason": "rolled back: latency", "snapshot": "s2",
                 "versions": {"m": "1.2.0"}, "at": 0.0}]
    state.write_text(json.dumps({"memory": {"refusals": refusals}}))
    assert rollbacks.last(tmp_path) == {"snapshot": "s2", "versions": {"m": "1.2.0"},
                                        "reason": "rolled back: latency",
                                        "at": "1970-01-01T00:00:00Z"}
    for text in ("{torn", json.dumps({"memory": []}), " " * (rollbacks.MAX_STATE_BYTES + 1)):
        state.write_text(text)
        assert rollbacks.last(tmp_path) is None


def test_a_followers_report_round_trips_and_sums_with_the_leaders_figures():
    from registry_sync.guard.reports import Reports, decode, encode, summed
    mine = {"abc123abc123": Figures(10, 1, ((0.001, 10.0), (float("inf"), 11.0)), {"Gold": 10},
                                    (10, 5.0, 7.0))}
    pod, theirs = decode(encode("pod-1", mine))
    assert pod == "pod-1" and theirs == mine
    now = [0.0]
    reports = Reports(max_age=5, clock=lambda: now[0])
    reports.put("pod-1", theirs)
    reports.put("pod-0", theirs)  # this pod's own report from when it followed: not added
    read = summed(lambda: mine, reports, "pod-0", leading=lambda: True)
    total = read()["abc123abc123"]
    assert (total.ok, total.failed, total.classes, total.values) == (20, 2, {"Gold": 20},
                                                                     (20, 10.0, 14.0))
    assert summed(lambda: mine, reports, "pod-0", leading=lambda: False)() == mine
    now[0] = 6.0  # stale: the pod is gone
    assert read() == mine


@pytest.mark.parametrize(("body", "named"), [
    (b"x" * 70_000, "over 65536 bytes"),
    (b"[", "not JSON"),
    (b'{"pod": "../x", "sets": {}}', "pod"),
    (b'{"pod": "p", "sets": {"nope": {}}}', "version set digest"),
    (b'{"pod": "p", "sets": {"abc123abc123": {"ok": -1, "failed": 0, "buckets": [], '
     b'"classes": {}, "values": [0, 0, 0]}}}', "ok"),
    (b'{"pod": "p", "sets": {"abc123abc123": {"ok": 1, "failed": 0, "buckets": [], '
     b'"classes": {}, "values": [0, NaN, 0]}}}', "values"),
    (b'{"pod": "p", "sets": {"abc123abc123": {"ok": 1, "failed": 0, "buckets": [[1]], '
     b'"classes": {}, "values": [0, 0, 0]}}}', "buckets"),
])
def test_a_malformed_report_is_refused_naming_the_field(body, named):
    from registry_sync.guard.reports import ReportError, decode
    with pytest.raises(ReportError, match=named):
        decode(body)


def test_a_report_names_classes_plainly_and_keeps_at_most_16_sets():
    from registry_sync.guard.reports import decode, encode
    many = {f"{n:012x}": Figures(n, 0, (), {"<b>\n": 1}) for n in range(40)}
    _pod, kept = decode(encode("pod-2", many))
    assert len(kept) == 16 and min(f.ok for f in kept.values()) == 24  # the busiest
    assert all(f.classes == {"other": 1} for f in kept.values())
