"""The sidecar finds versions the SDK's way: a UI rollback is served, an unknown status is named.

The local registry answers `registry-model/details` without status or tags (the tests' default).
"""

from __future__ import annotations

import time

import requests

from devkit.processes import running_sidecar, wait_until
from devkit.registry import unique_name


def test_a_rollback_in_the_ui_is_served_within_one_poll(local_registry, tmp_path):
    """1.1.0 in Production; 1.0.0 set back to Production while 1.1.0 keeps it: 1.0.0 is served."""
    name = unique_name("clf")
    local_registry.register_files(name, "1.0.0", {"m": b"1"}, status="Production")
    local_registry.register_files(name, "1.1.0", {"m": b"2"}, status="Production")
    local_registry.set_status(name, "1.0.0", "None")
    with running_sidecar(local_registry, tmp_path / "models", name,
                         REGISTRY_CANDIDATE_STATUS="", SYNC_INTERVAL="1") as sidecar:
        sidecar.wait_for_versions({name: "1.1.0"})
        polls = len(sidecar.events("sync_finished"))
        local_registry.set_status(name, "1.0.0", "Production")  # the rollback
        sidecar.wait_for_versions({name: "1.0.0"}, timeout=20)
        assert len(sidecar.events("sync_finished")) <= polls + 2  # the next poll did it
        status = sidecar.status()
        assert status["desired"] == {name: "1.0.0"}
        assert status["alsoWithStatus"] == {name: "1.1.0"}
        time.sleep(2.5)  # more polls: the warning is not repeated
        warned = sidecar.events("several_versions_with_status")
    assert len(warned) == 1 and warned[0]["serving"] == "1.0.0"
    assert warned[0]["also_with_status"] == ["1.1.0"]


def test_an_unknown_status_is_named_in_the_log_the_status_and_healthz(local_registry, tmp_path):
    """REGISTRY_STATUS=production: an error naming the allowed statuses, case-sensitive."""
    name = unique_name("clf")
    local_registry.register_files(name, "1.0.0", {"m": b"1"}, status="Production")
    with running_sidecar(local_registry, tmp_path / "models", name,
                         REGISTRY_STATUS="production", INIT_MAX_FAILURES="0") as sidecar:
        wait_until(lambda: (sidecar.status().get("lastError") or {}).get("type")
                   == "StatusUnknown", 20, what="the StatusUnknown error")
        message = sidecar.status()["lastError"]["message"]
        health = requests.get(f"{sidecar.url}/healthz", timeout=5).json()
        logged = sidecar.events("sync_failed")
    for text in (message, health["detail"], logged[-1]["error"]):
        assert "'production' is not one workspace" in text
        assert "'Production'" in text and "case-sensitively" in text
    assert local_registry.downloads() == 0
