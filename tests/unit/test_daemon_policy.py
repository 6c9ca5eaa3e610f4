"""The loop's failure policy: back off with jitter, never exit while a snapshot is served."""

import argparse
from pathlib import Path

from model_contract.manifest import Manifest, write
from registry_sync import config, publish
from registry_sync.daemon import EXIT_FAILED, EXIT_OK, Daemon, backoff_delay, poll_delay
from registry_sync.errors import CometUnavailable
from registry_sync.metrics import SyncMetrics
from registry_sync.state import SyncState
from registry_sync.syncer import Outcome


class ScriptedSyncer:
    """Plays back outcomes and errors, one per pass, then stops the daemon."""

    def __init__(self, settings, script):
        self.config, self.script = settings, list(script)
        self.state, self.metrics, self.reporter = SyncState(), SyncMetrics(), None
        self.daemon = None

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
