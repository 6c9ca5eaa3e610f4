"""The whole pod as real processes on 127.0.0.1: local registry, sidecar, serving (the front:
granian), and a load.

    with running_pod(work, trained_models, scan) as pod:
        version = pod.promote()               # register the next version, status Production
        with pod.load() as load:              # bounded prediction load (devkit.load)
            pod.wait_served(version)          # published by the sidecar, answered by serving
        load.assert_all_ok()

As in the Deployment: the sidecar reads the API key and the reload token from files (mounted
Secrets, re-read / read once), calls serving's admin port (SERVING_URL) to validate and reload,
and serving answers /-/ only there. MODEL_ROOT is a small tmpfs when this machine lets us mount
one (`pod.volume_limited`), like a size-limited emptyDir. The secrets are distinctive strings, and
every log, status, metric and error body the pod produces is fed to a SecretScan.

`pod.fault(...)` adds a local registry fault rule aimed at the sidecar only (by its User-Agent),
so that the test's own registry calls are never hit. Every wait is bounded.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from devkit.jsonlog import json_lines
from devkit.load import Load
from devkit.processes import (
    REPO_ROOT,
    Sidecar,
    free_port,
    published_versions,
    start_sidecar,
    wait_until,
)
from devkit.registry import LocalRegistry, running_local_registry, unique_name
from model_contract import layout, manifest
from registry_sync.store import snapshot
from tests.support.secret_scan import SecretScan
from tests.support.serving_process import Serving, launch

API_KEY = "e2e-api-key-6c0ffee1-must-never-be-logged"
ROTATED_API_KEY = "e2e-rotated-api-key-9badc0de-must-never-be-logged"
WRONG_API_KEY = "e2e-wrong-api-key-f00dfeed-must-never-be-logged"
RELOAD_TOKEN = "e2e-reload-token-5ec2e7ab-must-never-be-logged"
WEBHOOK_SECRET = "e2e-webhook-secret-0b5e55ed-must-never-be-logged"
SECRETS = (API_KEY, ROTATED_API_KEY, WRONG_API_KEY, RELOAD_TOKEN, WEBHOOK_SECRET)
SIDECAR_AGENT = "registry-sync/"  # the sidecar's User-Agent: faults aimed at it alone
VOLUME_MB = 96
# Short timeouts and fast polling: every fault scenario settles in seconds.
SIDECAR_DEFAULTS = {"SYNC_INTERVAL": "0.5", "SYNC_MAX_BACKOFF": "2", "COMET_TIMEOUT": "2",
                    "COMET_DOWNLOAD_TIMEOUT": "2", "INIT_MAX_FAILURES": "3",
                    "KEEP_SNAPSHOTS": "3", "LOG_LEVEL": "info"}
# A validator gets 20 s (a hanging model is refused in seconds); /-/validate waits the default
# VALIDATION_WAIT (1 s) and the sidecar asks again on each 202, so no worker is held longer.
SERVING_DEFAULTS = {"VALIDATION_TIMEOUT": "20"}
# A validation starts a python that imports scikit-learn: seconds, more on a busy machine.
VERDICT_TIMEOUT = 60.0


def mount_tmpfs(path: Path, megabytes: int) -> bool:
    """Mount a tmpfs of this size on path; False where this machine does not allow it."""
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={megabytes}m,mode=0755", "tmpfs",
                           str(path)], capture_output=True, timeout=10)
    return done.returncode == 0


def unmount(path: Path) -> None:
    """Unmount path (lazily if something still holds it)."""
    if subprocess.run(["umount", str(path)], capture_output=True, timeout=10).returncode:
        subprocess.run(["umount", "-l", str(path)], capture_output=True, timeout=10)


@dataclass(frozen=True)
class Folders:
    """Model folders to register: two trained pipelines (skops) and the seed's five pickles."""

    pipeline: Path
    alternative: Path
    seed: Path


@dataclass(repr=False)
class PodSystem:
    """The running pod and the handles a scenario needs."""

    registry: LocalRegistry
    model: str
    work: Path
    root: Path  # MODEL_ROOT: the (tmpfs) volume itself
    volume_limited: bool
    folders: Folders
    scan: SecretScan
    api_key_file: Path
    token_file: Path
    public_port: int = field(default_factory=free_port)
    admin_port: int = field(default_factory=free_port)
    serving: Serving | None = None
    sidecar: Sidecar | None = None
    sidecar_extra: dict[str, str] = field(default_factory=dict)
    serving_extra: dict[str, str] = field(default_factory=dict)
    _minor: int = 0

    def __repr__(self) -> str:  # short, and without the secrets its parts hold
        return f"PodSystem(model={self.model!r}, root={str(self.root)!r})"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        """The same short form in hypothesis' reports of failing examples."""
        printer.text(repr(self))

    # --- the registry -------------------------------------------------------------------

    def next_version(self) -> str:
        """A version newer than every one registered so far."""
        self._minor += 1
        return f"1.{self._minor}.0"

    def promote(self, folder: Path | None = None, **params: Any) -> str:
        """Register a folder (default: the pipeline) as the next version, status Production."""
        version = self.next_version()
        self.registry.register_folder(self.model, version, folder or self.folders.pipeline,
                                      status=params.pop("status", "Production"), **params)
        return version

    def promote_zip(self, data: bytes) -> str:
        """Register raw bytes as the next version, status Production."""
        version = self.next_version()
        self.registry.register_zip(self.model, version, data, status="Production")
        return version

    def fault(self, **rule: Any) -> None:
        """Add a fault rule that only the sidecar's requests can match."""
        self.registry.add_fault(user_agent=SIDECAR_AGENT, **rule)

    def demote_all_but(self, *keep: str) -> None:
        """Set every other Production version of the model to None."""
        for version in self.registry.with_status(self.model, "Production"):
            if version not in keep:
                self.registry.set_status(self.model, version, "None")

    def registry_events(self, event: str | None = None) -> list[dict[str, Any]]:
        """The local registry's JSON log lines (e.g. `fault_injected`)."""
        return json_lines(self.registry.log_path, event)

    # --- the sidecar --------------------------------------------------------------------

    def start_sidecar(self, models: str | None = None, **extra: str) -> Sidecar:
        """Start the sidecar as the pod runs it, with the defaults overridden by extra."""
        assert self.sidecar is None or self.sidecar.process.poll() is not None, \
            "a sidecar is already running on this MODEL_ROOT"
        env = {**SIDECAR_DEFAULTS, "COMET_API_KEY": "",
               "COMET_API_KEY_FILE": str(self.api_key_file),
               "RELOAD_TOKEN_FILE": str(self.token_file),
               "SERVING_URL": f"http://127.0.0.1:{self.admin_port}", **extra}
        self.sidecar = start_sidecar(self.registry, self.root, models or self.model, **env)
        self.sidecar_extra = {"models": models or self.model, **extra}
        return self.sidecar

    def restart_sidecar(self, models: str | None = None, **extra: str) -> Sidecar:
        """Stop the sidecar (SIGTERM) and start it again with these settings."""
        if self.sidecar is not None:
            self.sidecar.stop()
        return self.start_sidecar(models, **extra)

    def status(self) -> dict[str, Any]:
        """The sidecar's /status (scanned for secrets)."""
        response = requests.get(f"{self.sidecar.url}/status", timeout=5,
                                headers={"Authorization": f"Bearer {RELOAD_TOKEN}"})
        self.scan.check(response.text, "sidecar /status", "status")
        return response.json()

    def sidecar_metrics(self) -> str:
        """The sidecar's /metrics (scanned for secrets)."""
        text = requests.get(f"{self.sidecar.url}/metrics", timeout=5).text
        self.scan.check(text, "sidecar /metrics", "metrics")
        return text

    def cli_status(self, *flags: str) -> subprocess.CompletedProcess:
        """`registry-sync status [flags]` on MODEL_ROOT (output scanned for secrets)."""
        done = subprocess.run([sys.executable, "-m", "registry_sync.cli", "status", *flags],
                              cwd=REPO_ROOT, capture_output=True, text=True, timeout=60,
                              env={**os.environ, "PYTHONPATH": str(REPO_ROOT),
                                   "MODEL_ROOT": str(self.root)})
        self.scan.check(done.stdout + done.stderr, "registry-sync status", "status")
        return done

    def sidecar_events(self, event: str | None = None) -> list[dict[str, Any]]:
        """The sidecar's JSON log lines, across its restarts."""
        return json_lines(self.sidecar.log_path, event)

    def rejection_of(self, version: str) -> dict[str, Any] | None:
        """The sidecar's recorded rejection of this version of the model, if any."""
        for rejection in self.status()["rejected"]:
            if rejection["versions"].get(self.model) == version:
                return rejection
        return None

    def wait_error(self, kind: str, timeout: float = 15.0) -> dict[str, Any]:
        """Wait until the sidecar's /status shows a last error of this type; return it."""
        def found() -> dict[str, Any] | None:
            error = self.status()["lastError"] or {}
            return error if error.get("type") == kind else None

        return wait_until(found, timeout, what=f"{kind} in the sidecar's /status")

    def wait_refused_once(self, version: str) -> dict[str, Any]:
        """Wait for the rejection of version; then two more polls must download nothing."""
        rejection = wait_until(lambda: self.rejection_of(version), VERDICT_TIMEOUT,
                               what=f"the rejection of {version}")
        downloads = self.registry.downloads()
        polls = len(self.sidecar_events("sync_finished"))
        wait_until(lambda: len(self.sidecar_events("sync_finished")) >= polls + 2, 10,
                   what="two more polls")
        assert self.registry.downloads() == downloads, "retried"
        last = self.sidecar_events("sync_finished")[-1]
        assert last["outcome"] == "rejected" and "already rejected" in last["detail"], last
        return rejection

    def published(self) -> dict[str, str]:
        """Model -> version of the snapshot `current` names."""
        return published_versions(self.root)

    def published_snapshots(self) -> dict[str, dict[str, str]]:
        """Every snapshot the sidecar ever published -> its versions (from its log)."""
        return {e["snapshot"]: e["versions"] for e in self.sidecar_events("model_published")}

    def wait_published(self, version: str, timeout: float = VERDICT_TIMEOUT) -> None:
        """Wait until `current` holds this version of the model."""
        self.sidecar.wait_for_versions({self.model: version}, timeout)

    def wait_served(self, version: str, timeout: float = VERDICT_TIMEOUT) -> None:
        """Wait until the version is published and every worker answers with it."""
        self.wait_published(version, timeout)
        self.serving.wait_for_version(version, timeout=timeout)

    # --- serving ------------------------------------------------------------------------

    def launch_serving(self, wait: bool = True, **extra: str) -> Serving:
        """Start serving (the front) on the pod's ports, with the token from its file."""
        self.serving = launch(self.root, self.work, public=self.public_port,
                              admin=self.admin_port, token=RELOAD_TOKEN, wait=wait,
                              RELOAD_TOKEN_FILE=str(self.token_file),
                              **{**SERVING_DEFAULTS, **extra})
        self.serving_extra = extra
        self.scan.watch(self.serving.log_path)
        return self.serving

    def relaunch_serving(self, wait: bool = True, **extra: str) -> Serving:
        """Stop serving (if running) and start it again on the same ports (extra settings)."""
        self.serving.stop()
        return self.launch_serving(wait, **extra)

    def serving_events(self, event: str | None = None) -> list[dict[str, Any]]:
        """gunicorn's JSON log lines (every worker, every launch)."""
        return json_lines(self.serving.log_path, event)

    def serving_metrics(self) -> str:
        """Serving's /metrics (scanned for secrets)."""
        text = requests.get(f"{self.serving.admin_url}/metrics", timeout=5).text
        self.scan.check(text, "serving /metrics", "metrics")
        return text

    def served_model(self) -> dict[str, Any]:
        """Serving's /api/v1/model (the answering worker's view)."""
        response = requests.get(f"{self.serving.url}/api/v1/model", timeout=5)
        self.scan.check(response.text, "serving /api/v1/model", "status")
        return response.json()

    def load(self, **options: Any) -> Load:
        """A bounded prediction load on serving's public port (2 clients, 30 s at most)."""
        options.setdefault("seconds", 30.0)
        return Load(self.serving.url, on_error=lambda text, where: self.scan.check(
            text, where, "error body"), **options)

    def assert_only_published_answered(self, load: Load) -> None:
        """Every answer came from a snapshot the sidecar published, with its version."""
        published = self.published_snapshots()
        for answer in load.answers:
            if answer.status == 200:
                assert answer.snapshot in published, f"unpublished snapshot answered: {answer}"
                assert answer.version in published[answer.snapshot].values(), answer

    # --- the whole pod --------------------------------------------------------------------

    def assert_current_complete(self) -> None:
        """`current` names a complete snapshot, and every folder in snapshots/ verifies (a kill
        while pruning must not leave one without its files)."""
        found = snapshot.read_current(self.root)
        assert found is not None, "current names no readable snapshot"
        manifest.verify(layout.snapshot_path(self.root, found.snapshotId), found)
        folders = sorted(p.name for p in layout.snapshots_dir(self.root).iterdir())
        damaged = {name: snapshot.damage(self.root, name) for name in folders}
        assert not any(damaged.values()), f"incomplete snapshots in snapshots/: {damaged}"

    def reset(self) -> None:
        """Back to normal: registry up without faults, the right key, default sidecar, serving."""
        if self.registry.process.poll() is not None:
            self.registry.restart()
        self.registry.clear_faults()
        self.api_key_file.write_text(self.registry.api_key)
        if self.serving.process.poll() is not None or self.serving_extra:
            self.relaunch_serving()
        if self.sidecar is None or self.sidecar.process.poll() is not None or \
                self.sidecar_extra != {"models": self.model}:
            self.restart_sidecar()
            wait_until(lambda: set(self.published()) == {self.model}, 20,
                       what="the pod's model published again")
            self.serving.wait_for_version(self.published()[self.model], timeout=20)
        self.registry.reset_request_counts()

    def stop(self) -> None:
        """Stop the sidecar, then serving (the registry is stopped by its own context)."""
        if self.sidecar is not None:
            self.sidecar.stop()
        if self.serving is not None:
            self.serving.stop()


def _secret_file(path: Path, value: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(value)
    path.chmod(0o600)
    return path


@contextlib.contextmanager
def running_pod(work: Path, folders: Folders, scan: SecretScan) -> Iterator[PodSystem]:
    """Start the registry (a first version in Production), the sidecar's first sync, serving."""
    volume = work / "volume"
    limited = mount_tmpfs(volume, VOLUME_MB)
    try:
        with running_local_registry(work / "registry", api_key=API_KEY) as registry:
            pod = PodSystem(registry, unique_name("diamonds"), work, volume, limited, folders,
                            scan, _secret_file(work / "secrets" / "api-key", API_KEY),
                            _secret_file(work / "secrets" / "reload-token", RELOAD_TOKEN))
            scan.watch(registry.log_path)
            try:
                first = pod.promote()
                # the native sidecar starts first; serving's startup waits for its first sync
                # (serving is not up yet: the sidecar publishes without validation, by design)
                pod.start_sidecar()
                scan.watch(pod.sidecar.log_path)
                pod.wait_published(first)
                pod.launch_serving()
                pod.serving.wait_for_version(first, timeout=30)
                yield pod
            finally:
                pod.stop()
                scan.check_files(final=True)
    finally:
        if limited:
            unmount(volume)


def kill(process: subprocess.Popen) -> None:
    """SIGKILL a process and reap it."""
    process.send_signal(signal.SIGKILL)
    process.wait(10)


def largest_asset(folder: Path) -> tuple[int, int]:
    """(index in download order, size) of a registered folder's largest file: the one a fault
    aimed at the sidecar's downloads should hit (assets are listed in sorted-name order)."""
    sizes = [p.stat().st_size for p in sorted(folder.rglob("*")) if p.is_file()]
    return max(enumerate(sizes), key=lambda pair: pair[1])
