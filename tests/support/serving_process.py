"""Serving as a real process on loopback (`python -m serving.front`, as deployed), for integration
and browser tests."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import requests

from devkit.processes import free_port, wait_until
from devkit.sessions import spreading_session
from devkit.snapshots import build_snapshot
from registry_sync.store.publish import publish as publish_snapshot
from serving.front.command import WORKER_PROCESS_NAME, serving_argv
from tests.support.diamonds import TOKEN, VALID

REPO_ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT = 90.0  # a worker starts on a model only once the validator process accepted it
VERDICT_TIMEOUT = 120.0  # the validator process imports scikit-learn: seconds on a busy machine


@dataclass
class Serving:
    """Serving (the front) running on MODEL_ROOT, with its public and admin addresses."""

    url: str
    admin_url: str
    model_root: Path
    log_path: Path
    process: subprocess.Popen
    session: requests.Session = field(default_factory=lambda: spreading_session(), repr=False)
    token: str = field(default=TOKEN, repr=False)
    metrics_url: str | None = None  # METRICS_PORT's address, when it is set

    def publish(self, version: str, models: dict[str, Path]) -> str:
        """Stage, validate and publish a snapshot (as the sidecar does); return its id."""
        snapshot = self.stage(version, models)
        verdict = self.validate(snapshot)
        assert verdict.status_code == 200, f"{verdict.status_code} {verdict.text}"
        publish_snapshot(self.model_root, snapshot)
        return snapshot

    def validate(self, snapshot: str, timeout: float = VERDICT_TIMEOUT) -> requests.Response:
        """POST /-/validate, asking again while it answers 202; the final answer."""
        deadline = time.monotonic() + timeout
        while True:
            response = self.admin("/-/validate", snapshot)
            if response.status_code != 202 or time.monotonic() > deadline:
                return response
            time.sleep(0.5)

    def stage(self, version: str, models: dict[str, Path]) -> str:
        """Build a snapshot without publishing it."""
        return build_snapshot(self.model_root, models, version, publish=False)

    def predict(self) -> requests.Response:
        """One JSON prediction on the public port."""
        return self.session.post(self.url + "/api/v1/predict", json=VALID, timeout=10)

    def admin(self, path: str, snapshot: str | None) -> requests.Response:
        """POST to an admin endpoint on the admin port, with the token."""
        return self.session.post(self.admin_url + path, json={"snapshot": snapshot},
                                 headers={"Authorization": f"Bearer {self.token}"},
                                 timeout=30)

    def wait_for_version(self, version: str, timeout: float = 10.0, streak: int = 20) -> None:
        """Wait until `streak` answers in a row (spread over workers) name the version."""
        deadline, seen = time.monotonic() + timeout, 0
        while seen < streak:
            if time.monotonic() > deadline:
                raise AssertionError(f"serving did not converge on {version}: {self.log_tail()}")
            response = self.predict()
            ok = response.status_code == 200 and response.headers["X-Model-Version"] == version
            seen = seen + 1 if ok else 0
            if not ok:
                time.sleep(0.05)

    def worker_pids(self) -> set[int]:
        """The pids of the front's workers (its master's children so named; not the validator)."""
        return {p.pid for p in psutil.Process(self.process.pid).children()
                if p.name() == WORKER_PROCESS_NAME}

    def master_pid(self) -> int:
        """The front's master process (granian's): its children are the workers and the warm
        validator."""
        return self.process.pid

    def log_tail(self, lines: int = 30) -> str:
        """The end of serving's log, for failure messages."""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        """TERM, then KILL if serving does not stop in time."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self.session.close()


def start(model_root: Path, work: Path, version: str, models: dict[str, Path],
          workers: int = 2, **env: str) -> Serving:
    """Publish a first snapshot, start serving on free loopback ports, wait until ready."""
    build_snapshot(model_root, models, version)
    server = launch(model_root, work, workers=workers, **env)
    try:
        server.wait_for_version(version, timeout=START_TIMEOUT)
    except BaseException:
        server.stop()
        raise
    return server


def launch(model_root: Path, work: Path, *, workers: int = 2, public: int | None = None,
           admin: int | None = None, token: str = TOKEN, wait: bool = True,
           preexec_fn: Callable[[], None] | None = None, **env: str) -> Serving:
    """Start serving on MODEL_ROOT as it is and (unless told not to) wait for a loaded model.

    Ports are free loopback ones unless given (a relaunch reuses them). With `env` holding
    RELOAD_TOKEN_FILE the token is read from that file, as in the pod; other variables
    (MODEL_CHECK_INTERVAL, ...) are added as given. The log is appended to work/gunicorn.log.
    `preexec_fn` runs in the child before it execs (e.g. joining a memory cgroup).
    """
    public, admin = public or free_port(), admin or free_port()
    settings = {**os.environ, "MODEL_ROOT": str(model_root), "RELOAD_TOKEN": token,
                "BIND": f"127.0.0.1:{public}", "ADMIN_PORT": str(admin),
                "WEB_CONCURRENCY": str(workers),
                "PROMETHEUS_MULTIPROC_DIR": str(work / "metrics"), "LOG_LEVEL": "info",
                "PYTHONPATH": str(REPO_ROOT),
                **env}
    if "RELOAD_TOKEN_FILE" in env:
        settings.pop("RELOAD_TOKEN")
    log_path = work / "gunicorn.log"
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            serving_argv(),
            cwd=REPO_ROOT, env=settings, stdout=log, stderr=subprocess.STDOUT,
            preexec_fn=preexec_fn)
    server = Serving(f"http://127.0.0.1:{public}", f"http://127.0.0.1:{admin}", model_root,
                      log_path, process, token=token)
    try:
        if wait:
            _wait_until_ready(server)
    except BaseException:
        server.stop()
        raise
    return server


def _wait_until_ready(server: Serving) -> None:
    """Wait until a worker answers /readyz with 200."""
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        if server.process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"serving did not start:\n{server.log_tail()}")
        try:
            if server.session.get(server.url + "/readyz", timeout=10).status_code == 200:
                return
        except requests.RequestException:
            pass  # not listening yet, or a worker still importing
        time.sleep(0.1)


def wait_for_workers(server, condition) -> dict[int, dict]:
    """Poll /api/v1/model until both workers' `roles` meet the condition; worker -> roles."""
    seen: dict[int, dict] = {}

    def both_workers() -> bool:
        answer = server.session.get(server.url + "/api/v1/model", timeout=10).json()
        seen[answer["worker"]] = answer["roles"]
        return len(seen) == 2 and all(condition(r) for r in seen.values())

    wait_until(both_workers, timeout=30, what="both workers' roles")
    return seen
