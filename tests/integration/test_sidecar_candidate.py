"""The sidecar's challenger with real processes: local registry, `registry-sync run`, gunicorn.

A Staging version becomes MODEL_ROOT/candidate, validated by serving like the champion; an unsafe
archive or a version serving refuses as Staging is refused and unlinked; promoting the candidate
and another Staging version in the same poll reuses the candidate's snapshot as `current` (the
workers adopt it: no second load) and links the new one; no Staging version: no link.
"""

from __future__ import annotations

import json
import subprocess
import sys

from devkit.load import Load
from devkit.models import trained_models, wrong_golden  # noqa: F401
from devkit.processes import REPO_ROOT, python_env, running_sidecar, start_sidecar, wait_until
from devkit.registry import unique_name, zip_bytes
from model_contract import layout
from tests.support.serving_process import launch

TOKEN = "candidate-token-4242"


def candidate_versions(sidecar) -> dict[str, str] | None:
    """What the sidecar says `candidate` holds, when it names a link."""
    candidate = sidecar.status().get("candidate")
    return candidate["versions"] if candidate and candidate["link"] else None


def test_a_staging_version_is_linked_validated_promoted_and_refused_like_the_champion(
        local_registry, tmp_path, trained_models):  # noqa: F811
    name = unique_name("diamonds")
    local_registry.register_folder(name, "1.0.0", trained_models.pipeline, status="Production")
    local_registry.register_folder(name, "1.1.0", trained_models.alternative, status="Staging")
    root = tmp_path / "models"
    with running_sidecar(local_registry, root, name) as first:  # no serving yet
        first.wait_for_versions({name: "1.0.0"})
        wait_until(lambda: candidate_versions(first) == {name: "1.1.0"}, 30,
                   what="the Staging version linked as candidate")
    shown = subprocess.run([sys.executable, "-m", "registry_sync.cli", "status"], cwd=REPO_ROOT,
                           env=python_env(MODEL_ROOT=str(root), REGISTRY_MODELS=name),
                           capture_output=True, text=True, timeout=60).stdout
    assert "candidate    " + layout.candidate_snapshot_id(root) in shown
    serving = launch(root, tmp_path, token=TOKEN)
    try:
        with running_sidecar(local_registry, root, name, SERVING_URL=serving.admin_url,
                             RELOAD_TOKEN=TOKEN) as sidecar:
            wait_until(lambda: serving.session.get(serving.url + "/api/v1/model", timeout=5)
                       .json()["roles"]["challenger"], 30, what="serving holding the challenger")
        # both promotions land between two polls: made while no sidecar runs
        candidate = layout.candidate_snapshot_id(root)
        local_registry.set_status(name, "1.1.0", "Production")
        local_registry.register_folder(name, "1.2.0", serving_folder(root, candidate),
                                       status="Staging")
        with Load(serving.url, clients=2, seconds=60, max_requests=3000) as load:
            sidecar = start_sidecar(local_registry, root, name, SERVING_URL=serving.admin_url,
                                    RELOAD_TOKEN=TOKEN)
            try:
                _promote_both_in_one_poll(load, sidecar, serving, root, name, candidate)
                _refuse_unsafe_and_unfit(local_registry, sidecar, serving, root, name, tmp_path)
                for version in ("1.3.0", "1.4.0"):  # 1.2.0 is the Staging one again
                    local_registry.set_status(name, version, "None")
                wait_until(lambda: candidate_versions(sidecar) == {name: "1.2.0"}, 30,
                           what="1.2.0 linked again")
                local_registry.set_status(name, "1.2.0", "None")
                wait_until(lambda: sidecar.status()["candidate"]["outcome"] == "none", 20,
                           what="no version Staging")
                assert not (root / "candidate").is_symlink()
            finally:
                sidecar.stop()
        load.assert_all_ok()
    finally:
        serving.stop()


def _promote_both_in_one_poll(load, sidecar, serving, root, name, candidate) -> None:
    sidecar.wait_for_versions({name: "1.1.0"})
    wait_until(lambda: candidate_versions(sidecar) == {name: "1.2.0"}, 30,
               what="1.2.0 linked as the new candidate")
    serving.wait_for_version("1.1.0", timeout=20)
    assert not load.failures()
    assert layout.current_snapshot_id(root) == candidate, "the candidate's snapshot reused"
    events = [json.loads(line) for line in serving.log_path.read_text().splitlines()
              if line.startswith("{")]
    assert [e for e in events if e.get("event") == "challenger_promoted"]
    assert not [e for e in events if e.get("event") == "model_loaded"
                and e.get("snapshot") == candidate], "a worker loaded the promoted one again"


def _refuse_unsafe_and_unfit(registry, sidecar, serving, root, name, tmp_path) -> None:
    registry.register_zip(name, "1.3.0", zip_bytes({"../evil.py": b"x"}), status="Staging")
    wait_until(lambda: sidecar.status()["candidate"]["outcome"] == "rejected", 30,
               what="the unsafe Staging archive refused")
    status = sidecar.status()
    assert "climbs out" in status["candidate"]["detail"]
    assert status["rejected"][-1]["by"] == "archive"
    assert not (root / "candidate").is_symlink()
    bad = wrong_golden(serving_folder(root, layout.current_snapshot_id(root)), tmp_path / "bad")
    registry.register_folder(name, "1.4.0", bad, status="Staging")
    wait_until(lambda: (s := sidecar.status())["rejected"][-1]["versions"] == {name: "1.4.0"}
               and s, 30, what="serving refusing the Staging version")
    assert "golden" in sidecar.status()["rejected"][-1]["reason"]
    assert not (root / "candidate").is_symlink()
    assert serving.predict().headers["X-Model-Version"] == "1.1.0"


def serving_folder(root, snapshot_id: str):
    """The registry model's folder inside a snapshot (to register the same files again)."""
    folder = layout.snapshot_path(root, snapshot_id)
    return next(p for p in folder.iterdir() if p.is_dir())
