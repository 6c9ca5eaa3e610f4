"""The sidecar daemon as a real process against the local registry and a real MODEL_ROOT."""

import json
import os
import signal
import subprocess
import sys
import time

import requests

from devkit.processes import (
    REPO_ROOT,
    published,
    published_versions,
    running_sidecar,
    sidecar_env,
    start_sidecar,
    wait_until,
)
from devkit.registry import unique_name
from model_contract import layout, manifest


def cli(registry, root, models, *args, **extra):
    """Run a registry-sync subcommand with the sidecar's environment."""
    env = sidecar_env(registry, root, models, 0, **extra)
    return subprocess.run([sys.executable, "-m", "registry_sync.cli", *args], cwd=REPO_ROOT,
                          env=env, capture_output=True, text=True, timeout=120)


def test_first_sync_publishes_a_complete_verified_snapshot(local_registry, tmp_path):
    name = unique_name("clf")
    files = {"model.pkl": os.urandom(5000), "meta/info.json": b'{"a": 1}'}
    local_registry.register_files(name, "1.0.0", files, status="Production")
    root = tmp_path / "models"
    with running_sidecar(local_registry, root, name) as sidecar:
        sidecar.wait_for_versions({name: "1.0.0"})
        assert requests.get(f"{sidecar.url}/readyz", timeout=5).status_code == 200
        found = published(root)
        folder = layout.snapshot_path(root, found.snapshotId)
        manifest.verify(folder, found)  # sizes and SHA-256 of every file
        entry = found.model(name)
        assert entry.status == "Production" and entry.workspace == local_registry.workspace
        assert entry.registryModelItemId == local_registry.item_id(name, "1.0.0")
        assert (folder / name / "model.pkl").read_bytes() == files["model.pkl"]
        assert os.readlink(root / "current") == f"snapshots/{found.snapshotId}"
        status = sidecar.status()
        assert status["published"]["versions"] == {name: "1.0.0"}
        assert status["desired"] == {name: "1.0.0"}
    shown = cli(local_registry, root, name, "status", "--json")
    assert shown.returncode == 0 and json.loads(shown.stdout)["ready"] is True
    human = cli(local_registry, root, name, "status")
    assert f"{name} 1.0.0" in human.stdout


def test_promotion_is_published_within_one_interval_and_old_snapshots_pruned(local_registry,
                                                                              tmp_path):
    name = unique_name("clf")
    local_registry.register_files(name, "1.0.0", {"m": b"1"}, status="Production")
    root = tmp_path / "models"
    with running_sidecar(local_registry, root, name, KEEP_SNAPSHOTS="2") as sidecar:
        sidecar.wait_for_versions({name: "1.0.0"})
        for minor in range(1, 4):
            version = f"1.{minor}.0"
            local_registry.register_files(name, version, {"m": version.encode()})
            promoted = time.monotonic()
            local_registry.set_status(name, version, "Production")
            sidecar.wait_for_versions({name: version}, timeout=10)
            assert time.monotonic() - promoted < 0.5 + 2.0  # one interval + handling
        assert len(list((root / "snapshots").iterdir())) == 2
        expected = f'registry_sync_published_version_info{{model="{name}",version="1.3.0"}} 1.0'
        # the metric follows the symlink's rename by a moment
        wait_until(lambda: expected in sidecar.metrics(), 5, what="the published version metric")


def test_an_unchanged_registry_costs_one_items_request_per_poll_and_no_download(
        local_registry, tmp_path):
    """Idle: items?status= once a poll per status (the champion's and the candidate's, Staging
    by default); item/details and the allowed statuses only at a refresh."""
    name = unique_name("clf")
    local_registry.register_files(name, "1.0.0", {"m": b"1"}, status="Production")
    root = tmp_path / "models"
    with running_sidecar(local_registry, root, name) as sidecar:
        sidecar.wait_for_versions({name: "1.0.0"})
        time.sleep(0.3)
        local_registry.reset_request_counts()
        polls_before = len(sidecar.events("sync_finished"))
        time.sleep(3)
        polls = len(sidecar.events("sync_finished")) - polls_before
        counts = local_registry.request_counts()
    assert polls >= 3
    assert local_registry.downloads() == 0
    assert abs(local_registry.count("registry-model/items") - 2 * polls) <= 2
    assert local_registry.count("registry-model/details") == 0
    # at most one refresh (every 30 polls) in the window: item/details + allowed_status_values
    assert counts["total"] - local_registry.count("registry-model/items") <= 2


SEED_MODELS = ["model", "color-encoder", "clarity-encoder", "scaler", "label-encoder"]


def test_models_from_one_experiment_move_together(local_registry, tmp_path):
    names = [unique_name(m) for m in SEED_MODELS]
    for name in names:
        local_registry.register_files(name, "1.0.0", {f"{name}.pkl": b"v1"},
                                      status="Production", experimentKey="a" * 32)
        local_registry.register_files(name, "2.0.0", {f"{name}.pkl": b"v2"},
                                      experimentKey="b" * 32)
    root = tmp_path / "models"
    seen = set()
    with running_sidecar(local_registry, root, ",".join(names)) as sidecar:
        sidecar.wait_for_versions(dict.fromkeys(names, "1.0.0"))
        for name in names:  # promoted one after another, as in the Comet UI
            local_registry.set_status(name, "2.0.0", "Production")
            deadline = time.monotonic() + 1.2  # more than two polls between promotions
            while time.monotonic() < deadline:
                seen.add(tuple(sorted(set(published_versions(root).values()))))
                time.sleep(0.02)
            if name != names[-1]:
                assert "waiting for" in (sidecar.status()["waiting"] or "")
        sidecar.wait_for_versions(dict.fromkeys(names, "2.0.0"))
    assert seen <= {("1.0.0",), ("2.0.0",)}  # never a mix


def test_registry_outage_keeps_the_snapshot_backs_off_and_recovers(local_registry, tmp_path):
    name = unique_name("clf")
    local_registry.register_files(name, "1.0.0", {"m": b"1"}, status="Production")
    root = tmp_path / "models"
    with running_sidecar(local_registry, root, name, INIT_MAX_FAILURES="1") as sidecar:
        sidecar.wait_for_versions({name: "1.0.0"})
        local_registry.add_fault(path="registry-model/items", status=503, times=None)
        wait_until(lambda: sidecar.status()["consecutiveFailures"] >= 3, 30,
                   what="three failed passes")
        status = sidecar.status()
        assert "HTTP 503" in status["lastError"]["message"]
        assert sidecar.process.poll() is None
        assert requests.get(f"{sidecar.url}/readyz", timeout=5).status_code == 200
        assert published_versions(root) == {name: "1.0.0"}
        assert "registry_sync_consecutive_failures" in sidecar.metrics()
        local_registry.clear_faults()
        local_registry.register_files(name, "1.1.0", {"m": b"2"}, status="Production")
        sidecar.wait_for_versions({name: "1.1.0"}, timeout=20)
        # The pass publishes, then ends and records its outcome: the count resets a moment later.
        wait_until(lambda: sidecar.status()["consecutiveFailures"] == 0, 10,
                   what="the failure count reset by the successful pass")


def test_the_first_sync_failing_stops_the_daemon_with_a_clear_message(local_registry, tmp_path):
    sidecar = start_sidecar(local_registry, tmp_path / "models", unique_name("missing"),
                            wait_ready=False, INIT_MAX_FAILURES="2")
    assert sidecar.process.wait(30) == 1
    gave_up = sidecar.events("sync_gave_up")
    assert gave_up and "not found" in gave_up[0]["error"]


def test_sigterm_exits_0_and_leaves_no_staging(local_registry, tmp_path):
    name = unique_name("clf")
    local_registry.register_files(name, "1.0.0", {"m": os.urandom(1_000_000)},
                                  status="Production")
    local_registry.add_fault(path="get-asset", drip_bps=100_000, times=None)
    root = tmp_path / "models"
    sidecar = start_sidecar(local_registry, root, name)
    wait_until(lambda: list((root / ".staging").rglob("*.parts/*")), 20, what="download started")
    assert sidecar.stop(signal.SIGTERM) == 0
    assert not (root / ".staging").exists()
    assert published_versions(root) == {}
