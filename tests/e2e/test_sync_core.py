"""The sidecar's sync core against the whole pod (issue 11): its memory, its waits, its secrets.

Damaged snapshot folders are never trusted (case 2), a huge Retry-After is capped (6), a long
healthy download keeps /healthz green (8), secrets with a trailing newline work and are never
printed (9), a key file missing mid-rotation is a failed pass (10), and a refused version rolls
back to the last validated snapshot and stays there (13).
"""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import time

import psutil
import pytest
import requests

from devkit.jsonlog import event_time
from devkit.models import wrong_golden
from devkit.processes import REPO_ROOT, wait_until
from devkit.registry import zip_bytes
from model_contract import layout
from tests.support.pod_system import API_KEY


def test_a_snapshot_damaged_by_a_kill_while_pruning_is_never_reused(pod):
    """Case 2: a folder that lost files (an interrupted delete) is discarded, not linked from."""
    with pod.load() as load:
        older = pod.promote()
        pod.wait_served(older)
        damaged = layout.current_snapshot_id(pod.root)
        newer = pod.promote(pod.folders.alternative)
        pod.wait_served(newer)
        folder = layout.snapshot_path(pod.root, damaged)
        (folder / pod.model / "pipeline.skops").unlink()  # what a SIGKILL mid-rmtree leaves
        downloads = pod.registry.downloads()
        pod.registry.set_status(pod.model, newer, "None")  # production goes back to older
        pod.wait_served(older)
        assert pod.registry.downloads() > downloads  # fetched again, not linked
        assert layout.current_snapshot_id(pod.root) != damaged and not folder.exists()
        assert pod.rejection_of(older) is None
        pod.assert_current_complete()
    load.assert_all_ok()
    pod.assert_only_published_answered(load)


@pytest.mark.parametrize("retry_after", [99999999999, 1e10])  # inf: no JSON for it here
def test_a_huge_retry_after_is_capped_and_the_sidecar_lives_on(pod, retry_after):
    """Case 6: 429 with an absurd Retry-After: failed passes SYNC_MAX_BACKOFF (2 s) apart."""
    pid = pod.sidecar.process.pid
    pod.fault(path="registry-model/items", status=429, retry_after=retry_after)
    failed = len(pod.sidecar_events("sync_failed"))
    wait_until(lambda: len(pod.sidecar_events("sync_failed")) >= failed + 3, 30,
               what="three failed passes")
    times = [event_time(e) for e in pod.sidecar_events("sync_failed")[failed:failed + 3]]
    # capped at SYNC_MAX_BACKOFF=2 (generous slack for a loaded machine), not 1e10 s
    assert all(later - earlier < 2 + 10 for earlier, later in itertools.pairwise(times)), times
    assert pod.sidecar.process.poll() is None and pod.sidecar.process.pid == pid
    assert "HTTP 429" in pod.status()["lastError"]["message"]
    pod.registry.clear_faults()
    version = pod.promote()
    pod.wait_served(version, timeout=15)


def test_a_long_healthy_download_keeps_healthz_green(pod):
    """Case 8: a 2 MB zip dripped at 160 kB/s takes ~12 s, longer than /healthz allows idle."""
    pod.fault(path="get-asset", drip_bps=160_000)
    pod.fault(path="item/download", drip_bps=160_000)  # whichever path the sidecar takes
    version = pod.promote_zip(zip_bytes({"weights.bin": os.urandom(2_000_000)}))
    started = time.monotonic()
    codes = []
    wait_until(lambda: pod.sidecar_events("download_progress"), 20, what="the download")
    while time.monotonic() - started < 30 and not pod.rejection_of(version):
        codes.append(requests.get(f"{pod.sidecar.url}/healthz", timeout=5).status_code)
        time.sleep(0.5)
    assert time.monotonic() - started > 9, "the download was not slow enough to prove anything"
    assert codes and set(codes) == {200}
    # not a model: serving refuses it, once (a validator process may take a while)
    assert wait_until(lambda: pod.rejection_of(version), 60, what="the refusal")["reason"]


def test_secrets_with_a_trailing_newline_work_and_are_never_printed(pod):
    """Case 9: key and token as `echo` writes them; the secret scan checks every output."""
    key = pod.registry.api_key  # the one it accepts now: an earlier scenario may have rotated it
    pod.api_key_file.write_text(key + "\n")
    pod.token_file.write_text(pod.token_file.read_text().strip() + "\r\n")
    pod.restart_sidecar(COMET_API_KEY_FILE="", COMET_API_KEY=key + "\n")
    version = pod.promote()
    pod.wait_served(version)
    pod.restart_sidecar()
    version = pod.promote()
    pod.wait_served(version)


def test_a_secret_with_an_inner_newline_is_refused_naming_the_variable_only(pod):
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "MODEL_ROOT": str(pod.root),
           "REGISTRY_MODELS": pod.model, "COMET_WORKSPACE": pod.registry.workspace,
           "COMET_API_KEY": API_KEY[:10] + "\n" + API_KEY[10:]}
    done = subprocess.run([sys.executable, "-m", "registry_sync.cli", "once"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "COMET_API_KEY" in done.stderr
    assert API_KEY[:10] not in done.stderr + done.stdout and "Traceback" not in done.stderr


def test_a_key_file_missing_mid_rotation_is_a_failed_pass_then_it_catches_up(pod):
    """Case 10: the mounted key vanishes, then comes back empty, then rotated: no exit."""
    pid = pod.sidecar.process.pid
    with pod.load() as load:
        pod.api_key_file.unlink()
        assert "cannot be read" in pod.wait_error("SecretUnavailable")["message"]
        pod.api_key_file.write_text("")
        wait_until(lambda: "is empty" in pod.status()["lastError"]["message"], 15,
                   what="the empty key file reported")
        pod.api_key_file.write_text(pod.registry.api_key)
        version = pod.promote()
        pod.wait_served(version)
    load.assert_all_ok()
    assert pod.sidecar.process.pid == pid and pod.sidecar.process.poll() is None


def _unavailable(pod) -> list[dict]:
    """The sidecar's passes that failed because serving did not answer."""
    return [e for e in pod.sidecar_events("sync_failed")
            if "ServingUnavailable" in e["error_type"]]


def signal_serving(pod, signum: int) -> None:
    """Signal the front's master (and so its admin listener), its workers and warm validator."""
    master = psutil.Process(pod.serving.master_pid())
    for process in [master, *master.children(recursive=True)]:
        process.send_signal(signum)


def test_a_refusal_rolls_back_to_the_last_validated_snapshot_and_stays(pod, tmp_path):
    """Case 13: serving unreachable (stopped), down, then refusing: never alternates."""
    good = pod.promote()
    pod.wait_served(good)
    pod.restart_sidecar(VALIDATION_DEADLINE="3")
    validated = pod.status()["lastValidated"]
    # The pod's log holds earlier tests' events too: count from here.
    unavailable_before = len(_unavailable(pod))
    bad = pod.promote(wrong_golden(pod.folders.pipeline, tmp_path / "bad"))
    signal_serving(pod, signal.SIGSTOP)  # connections accepted, never answered: unavailable
    try:
        wait_until(lambda: len(_unavailable(pod)) >= unavailable_before + 2, 30,
                   what="two validations that serving could not answer")
        assert pod.published() == {pod.model: good}
    finally:
        # Serving answers the held validation once it wakes: the sidecar must not be there to
        # hear it, or the refusal would come before the unvalidated publish this case is about.
        pod.sidecar.stop()
        signal_serving(pod, signal.SIGCONT)
    pod.serving.stop()  # nothing listens: published unvalidated
    pod.start_sidecar()  # the default VALIDATION_DEADLINE, for validators that take seconds
    pod.wait_published(bad)
    pod.relaunch_serving(wait=False)  # back, and refusing it: rolled back to the validated one
    wait_until(lambda: pod.rejection_of(bad), 60, what=f"the refusal of {bad}")
    pod.wait_served(good)
    assert layout.current_snapshot_id(pod.root) == validated
    published = len(pod.sidecar_events("model_published"))
    polls = len(pod.sidecar_events("sync_finished"))
    wait_until(lambda: len(pod.sidecar_events("sync_finished")) >= polls + 4, 15,
               what="four more polls")
    assert len(pod.sidecar_events("model_published")) == published  # no alternation
    assert len(list(layout.snapshots_dir(pod.root).iterdir())) <= 4  # KEEP_SNAPSHOTS + 1
    version = pod.promote()
    pod.wait_served(version)
