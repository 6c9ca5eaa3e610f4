"""The loop's failure policy: back off with jitter, never exit while a snapshot is served."""

import argparse
import io
import json
import threading
import time
from pathlib import Path

import pytest

from model_contract import logs
from model_contract.manifest import Manifest, write
from registry_sync import config
from registry_sync.commands import interruptible_sleep
from registry_sync.errors import CometUnavailable, SecretUnavailable, Stopped
from registry_sync.ops.metrics import SyncMetrics
from registry_sync.ops.server import health
from registry_sync.store import publish
from registry_sync.store.state import SyncState
from registry_sync.sync.daemon import EXIT_FAILED, EXIT_OK, Daemon, backoff_delay, poll_delay
from registry_sync.sync.syncer import Outcome


class ScriptedSyncer:
    """Plays back outcomes and errors, one per pass, then stops the daemon."""

    def __init__(self, settings, script):
        self.config, self.script = settings, list(script)
        self.state, self.metrics, self.reporter = SyncState(), SyncMetrics(), None
        self.daemon = None

    def save_state(self):
        pass

    def sync_once(self):
        if not self.script:
            self.daemon.request_stop()
            return Outcome("unchanged")
        step = self.script.pop(0)
        if isinstance(step, Exception):
            raise step
        return step


def settings(root: Path, **extra) -> config.SyncConfig:
    env = {"MODEL_ROOT": str(root), "REGISTRY_MODELS": "m", "COMET_WORKSPACE": "ws",
           "COMET_API_KEY": "k", "SYNC_INTERVAL": "10", "SYNC_MAX_BACKOFF": "300", **extra}
    return config.sync_config(argparse.Namespace(), env)


def run(root, script, **extra):
    """Run the real loop over a script, recording the waits instead of sleeping."""
    waits = []
    syncer = ScriptedSyncer(settings(root, **extra), script)
    syncer.daemon = Daemon(syncer, wait=waits.append, rand=lambda: 1.0)
    return syncer.daemon.run(), waits, syncer.daemon


def publish_something(root: Path) -> None:
    folder = root / "snapshots" / "s1"
    folder.mkdir(parents=True)
    write(folder, Manifest("s1", "now", ()))
    publish.publish(root, "s1")


def test_backoff_grows_is_capped_and_jittered():
    assert backoff_delay(1, 10, 300, lambda: 0.0) == 10
    assert backoff_delay(1, 10, 300, lambda: 1.0) == 20
    assert backoff_delay(3, 10, 300, lambda: 1.0) == 80
    assert backoff_delay(50, 10, 300, lambda: 1.0) == 300
    assert backoff_delay(50, 10, 300, lambda: 0.0) == 150
    assert 9 <= poll_delay(10, lambda: 0.0) <= poll_delay(10, lambda: 1.0) <= 11


def test_before_the_first_snapshot_init_max_failures_stops_the_daemon(tmp_path):
    code, waits, _ = run(tmp_path, [CometUnavailable("down")] * 3, INIT_MAX_FAILURES="3")
    assert code == EXIT_FAILED
    assert len(waits) == 2 and waits[0] < waits[1]


def test_with_a_good_snapshot_the_daemon_never_gives_up(tmp_path):
    publish_something(tmp_path)
    code, waits, daemon = run(tmp_path, [CometUnavailable("down")] * 8, INIT_MAX_FAILURES="3")
    assert code == EXIT_OK
    assert waits[:8] == sorted(waits[:8]) and max(waits) <= 300
    assert daemon.state.consecutive_failures == 0  # the last pass succeeded


def test_init_max_failures_zero_means_keep_trying(tmp_path):
    code, _, _ = run(tmp_path, [CometUnavailable("down")] * 10, INIT_MAX_FAILURES="0")
    assert code == EXIT_OK


def test_a_bug_in_a_pass_does_not_kill_the_loop(tmp_path):
    publish_something(tmp_path)
    code, _, _ = run(tmp_path, [ZeroDivisionError("bug"), Outcome("unchanged")])
    assert code == EXIT_OK


def unavailable(retry_after: float) -> CometUnavailable:
    error = CometUnavailable("HTTP 429")
    error.retry_after = retry_after
    return error


def test_a_huge_or_infinite_retry_after_is_capped_at_sync_max_backoff(tmp_path):
    """Issue 11 case 6: the daemon stays alive and waits SYNC_MAX_BACKOFF at most."""
    publish_something(tmp_path)
    script = [unavailable(99999999999.0), unavailable(1e10), unavailable(float("inf"))]
    code, waits, _ = run(tmp_path, script, SYNC_MAX_BACKOFF="7")
    assert code == EXIT_OK
    assert waits[:3] == [7, 7, 7]


def test_a_stop_anywhere_in_a_pass_is_not_a_failure_and_exits_0(tmp_path):
    code, _, daemon = run(tmp_path, [Stopped("stop requested while unpacking")],
                          INIT_MAX_FAILURES="1")
    assert code == EXIT_OK and daemon.state.consecutive_failures == 0
    assert daemon.state.last_error is None


def test_a_secret_file_missing_mid_rotation_is_a_failed_pass_not_an_exit(tmp_path):
    """Issue 11 case 10: with a snapshot published, the loop retries."""
    publish_something(tmp_path)
    missing = SecretUnavailable("COMET_API_KEY_FILE '/run/key' cannot be read")
    code, _, daemon = run(tmp_path, [missing, missing, Outcome("unchanged")],
                          INIT_MAX_FAILURES="1")
    assert code == EXIT_OK and daemon.state.consecutive_failures == 0


def test_an_unexpected_error_is_logged_once_with_its_traceback(tmp_path):
    publish_something(tmp_path)
    stream = io.StringIO()
    logs.setup("info", stream)
    run(tmp_path, [ZeroDivisionError("bug in a pass")])
    events = [json.loads(line) for line in stream.getvalue().splitlines()]
    crashed = [e for e in events if "bug in a pass" in json.dumps(e)]
    assert [e["event"] for e in crashed] == ["sync_crashed"]
    assert "ZeroDivisionError: bug in a pass" in crashed[0]["traceback"]
    assert "in sync_once" in crashed[0]["traceback"]


def test_the_heartbeat_moves_while_a_pass_makes_progress(tmp_path):
    """Issue 11 case 8: /healthz follows the download's progress, not the end of a pass."""
    now = [1000.0]
    syncer = ScriptedSyncer(settings(tmp_path), [])
    daemon = Daemon(syncer, clock=lambda: now[0])
    beats = []

    def long_download():
        for _ in range(3):
            now[0] += 400  # more than the health allowance, between chunks
            syncer.on_progress()
            beats.append(health(daemon)[0])
        return Outcome("published")

    syncer.sync_once = long_download
    daemon.run_once()
    assert beats == [True, True, True]
    now[0] += 10_000
    assert health(daemon)[0] is False


def test_the_clients_retry_sleep_is_cut_short_by_a_stop():
    stop = threading.Event()
    sleep = interruptible_sleep(stop)
    sleep(0.01)  # no stop: an ordinary short sleep
    stop.set()
    started = time.monotonic()
    with pytest.raises(Stopped):
        sleep(60)
    assert time.monotonic() - started < 30


def test_a_manifest_unreadable_for_lack_of_descriptors_is_not_no_snapshot(tmp_path):
    """Descriptors exhausted (a real EMFILE, in a child with a low limit): read_current finds
    nothing, yet the give-up rule is told a snapshot may be published; no link: surely none."""
    import subprocess
    import sys

    publish_something(tmp_path / "published")
    (tmp_path / "empty").mkdir()
    child = f"""
import resource, sys
from pathlib import Path
from registry_sync.store import snapshot
resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))
held = []
try:
    while True:
        held.append(open("/dev/null"))
except OSError:
    pass
root = Path({str(tmp_path / "published")!r})
print(snapshot.read_current(root) is None, snapshot.surely_unpublished(root),
      snapshot.surely_unpublished(Path({str(tmp_path / "empty")!r})))
"""
    done = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True,
                          timeout=60, check=True)
    assert done.stdout.split() == ["True", "False", "True"]


def test_healthz_fails_when_a_cluster_thread_dies_or_the_election_stops_trying(tmp_path):
    """The loop alone is not the sidecar: a dead decision-watch or a stuck election is 503."""
    from registry_sync.cluster.election import ElectionSettings
    from registry_sync.cluster.member import Cluster, Trust

    class NoLease:
        name = "comet-registry-sync"

        def get(self):
            raise ZeroDivisionError("a bug in the watch")

    stop = threading.Event()
    cluster = Cluster(ElectionSettings("ns", "comet-registry-sync", "pod-a", retry_period=0.1),
                      NoLease(), NoLease(), "http://10.0.0.1:8090",
                      Trust(lambda: b"k" * 16, "cfg", 60.0), lambda: None)
    daemon = Daemon(ScriptedSyncer(settings(tmp_path), []), stop=stop)
    daemon.cluster = cluster
    cluster.start(stop)
    try:
        time.sleep(0.5)  # the watch survives its bug (retried), the election its own
        assert health(daemon)[0] is True
        cluster.elector.attempted_at -= 1000  # as if the election loop were stuck for long
        ok, why = health(daemon)
        assert not ok and "no election attempt" in why
    finally:
        stop.set()
        cluster.close(2)
    ok, why = health(daemon)
    assert not ok and "cluster threads stopped" in why
