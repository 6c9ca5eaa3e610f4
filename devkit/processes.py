"""Real processes for tests: free ports, waiting for conditions, and the sidecar daemon."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from model_contract import layout, manifest

REPO_ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until(condition: Callable[[], Any], timeout: float = 30.0, interval: float = 0.05,
               what: str = "condition") -> Any:
    """Poll until condition() is truthy and return it; AssertionError after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(requests.RequestException, OSError, ValueError):
            value = condition()
            if value:
                return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def stop_process(process: subprocess.Popen, sig: int = signal.SIGTERM,
                 timeout: float = 20.0) -> int:
    """Signal a process (SIGKILL if it outlives the timeout) and return its exit code."""
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode


def python_env(**extra: str) -> dict[str, str]:
    """The test's environment plus the repo on PYTHONPATH and the given variables."""
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    env.update(extra)
    return env


def published(root: Path) -> manifest.Manifest | None:
    """The manifest `current` points at, or None."""
    snapshot_id = layout.current_snapshot_id(root)
    if snapshot_id is None:
        return None
    return manifest.read(layout.snapshot_path(root, snapshot_id))


def published_versions(root: Path) -> dict[str, str]:
    """Model name -> version of the published snapshot ({} if none)."""
    found = published(root)
    return found.versions if found else {}


@dataclass
class Sidecar:
    """A running `registry-sync run` process."""

    process: subprocess.Popen
    root: Path
    port: int
    log_path: Path
    token: str = ""  # its RELOAD_TOKEN, sent for the whole /status

    @property
    def url(self) -> str:
        """Base URL of its /healthz /readyz /metrics /status."""
        return f"http://127.0.0.1:{self.port}"

    def status(self) -> dict:
        """Its whole /status answer (with its token, if it has one)."""
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        return requests.get(f"{self.url}/status", headers=headers, timeout=5).json()

    def metrics(self) -> str:
        """Its /metrics text."""
        return requests.get(f"{self.url}/metrics", timeout=5).text

    def events(self, name: str | None = None) -> list[dict]:
        """Its JSON log lines, optionally only one event."""
        lines = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            with contextlib.suppress(ValueError):
                entry = json.loads(line)
                if name is None or entry.get("event") == name:
                    lines.append(entry)
        return lines

    def wait_for_versions(self, expected: dict[str, str], timeout: float = 30.0) -> None:
        """Wait until the published snapshot holds exactly these versions."""
        wait_until(lambda: published_versions(self.root) == expected, timeout,
                   what=f"published versions {expected}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> int:
        """Signal the process and wait for its exit code."""
        return stop_process(self.process, sig, timeout)


def sidecar_env(registry, root: Path, models: str, port: int, **extra: str) -> dict[str, str]:
    """The environment of a sidecar following `models` in the registry, fast-polling.

    `extra` adds variables or overrides these defaults (e.g. COMET_TIMEOUT="1").
    """
    settings = {**registry.env(), "MODEL_ROOT": str(root), "REGISTRY_MODELS": models,
                "SYNC_INTERVAL": "0.5", "SYNC_MAX_BACKOFF": "2", "COMET_TIMEOUT": "5",
                "COMET_DOWNLOAD_TIMEOUT": "5", "SIDECAR_LISTEN": f"127.0.0.1:{port}"}
    return python_env(**{**settings, **extra})


def start_sidecar(registry, root: Path, models: str, wait_ready: bool = True,
                  **extra: str) -> Sidecar:
    """Start `registry-sync run`; by default wait until its /healthz answers."""
    port = free_port()
    log_path = root.parent / f"{root.name}-sidecar.log"
    with open(log_path, "a") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "registry_sync.cli", "run"], cwd=REPO_ROOT,
            env=sidecar_env(registry, root, models, port, **extra), stdin=subprocess.DEVNULL,
            stdout=log, stderr=log)
    token_file = extra.get("RELOAD_TOKEN_FILE")
    token = Path(token_file).read_text().strip() if token_file and Path(token_file).is_file() \
        else extra.get("RELOAD_TOKEN", "")
    sidecar = Sidecar(process, root, port, log_path, token)
    if wait_ready:
        wait_until(lambda: process.poll() is not None or requests.get(
            f"{sidecar.url}/healthz", timeout=1).ok, 20, what="sidecar /healthz")
        assert process.poll() is None, log_path.read_text()
    return sidecar


@contextlib.contextmanager
def running_sidecar(registry, root: Path, models: str, **extra: str) -> Iterator[Sidecar]:
    """A sidecar for the duration of a with-block."""
    sidecar = start_sidecar(registry, root, models, **extra)
    try:
        yield sidecar
    finally:
        sidecar.stop()
