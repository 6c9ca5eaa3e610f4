"""Starting the systems under test: serving (as deployed), the textbook app, registry, sidecar."""

from __future__ import annotations

import shutil
from pathlib import Path
from string import Template

from devkit.processes import free_port
from devkit.registry import LocalRegistry, start_local_registry
from serving.front.command import serving_argv

from .common import (
    START_TIMEOUT,
    TOKEN,
    Process,
    Processes,
    answers,
    env,
    python,
    wait_until,
)

NGINX_TEMPLATE = Path(__file__).with_name("nginx.conf")
GUNICORN = ["-m", "gunicorn", "--config", "python:bench.gunicorn_conf", "serving.wsgi:app"]


def serving(processes: Processes, name: str, model_root: Path, workers: int = 2,
            threads: int = 1, ready: bool = True, front: bool = True,
            options: tuple[str, ...] = (), **extra: str) -> Process:
    """Serving as the image runs it (`python -m serving.front`), with an admin port and a token.

    front=False: gunicorn alone on the public port (as before the front, bench/gunicorn_conf.py);
    `options` are added to gunicorn's command line (e.g. another worker class).
    """
    port, admin = free_port(), free_port()
    metrics = processes.work / f"{name}-metrics"
    metrics.mkdir(exist_ok=True)
    environ = env(MODEL_ROOT=str(model_root), RELOAD_TOKEN=TOKEN, BIND=f"127.0.0.1:{port}",
                  ADMIN_PORT=str(admin), WEB_CONCURRENCY=str(workers),
                  GUNICORN_THREADS=str(threads), PROMETHEUS_MULTIPROC_DIR=str(metrics),
                  LOG_LEVEL="warning", **extra)
    argv = serving_argv(python()) if front else [python(), *GUNICORN]
    process = processes.start(name, [*argv, *options], environ)
    process.url, process.extra["admin"] = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{admin}"
    path = "/readyz" if ready else "/healthz"
    wait_until(lambda: answers(process.url + path), START_TIMEOUT, f"{name} {path}",
               process.popen)
    wait_until(lambda: len(process.workers()) >= workers, START_TIMEOUT, f"{name} workers")
    return process


def textbook(processes: Processes, name: str, model_dir: Path, server: str,
             workers: int = 2) -> Process:
    """The textbook app as the textbook runs it (`flask run`) or under gunicorn sync workers."""
    port = free_port()
    environ = env(TEXTBOOK_MODEL_DIR=str(model_dir), OMP_NUM_THREADS="1")
    if server == "flask":
        argv = [python(), "-m", "flask", "--app", "bench.textbook_app", "run",
                "--host", "127.0.0.1", "--port", str(port)]
    else:
        argv = [python(), "-m", "gunicorn", "-w", str(workers), "-b", f"127.0.0.1:{port}",
                "--log-level", "warning", "bench.textbook_app:app"]
    return _listening(processes, name, argv, environ, port, "/ping")


def granian_wsgi(processes: Processes, name: str, model_root: Path, workers: int = 2) -> Process:
    """The app under granian's own WSGI interface, tuned (one Python thread per worker).

    The body is read on that thread, so a trickled body holds the worker: the reason the front
    uses granian's RSGI interface instead (serving/front/rsgi.py).
    """
    port = free_port()
    metrics = processes.work / f"{name}-metrics"
    metrics.mkdir(exist_ok=True)
    environ = env(MODEL_ROOT=str(model_root), RELOAD_TOKEN=TOKEN, LOG_LEVEL="warning",
                  PROMETHEUS_MULTIPROC_DIR=str(metrics), OMP_NUM_THREADS="1")
    argv = [python(), "-m", "granian", "--interface", "wsgi", "--workers", str(workers),
            "--host", "127.0.0.1", "--port", str(port), "--http", "1", "--no-ws",
            "--runtime-mode", "st", "--blocking-threads", "1",
            "--http1-header-read-timeout", "10000", "--log-level", "warning",
            "serving.wsgi:app"]
    return _listening(processes, name, argv, environ, port, "/readyz")


def nginx_gunicorn(processes: Processes, name: str, model_root: Path) -> Process:
    """nginx buffering each request in front of gunicorn's 2 sync workers: the front before."""
    upstream = serving(processes, f"{name}-gunicorn", model_root, front=False)
    port = free_port()
    run_dir = processes.work / f"{name}-nginx"
    run_dir.mkdir(exist_ok=True)
    settings = {"RUN_DIR": run_dir, "NGINX_LOG_LEVEL": "warn", "BIND": f"127.0.0.1:{port}",
                "FRONT_MAX_CONNECTIONS": 1024, "FRONT_HEADER_TIMEOUT": 10,
                "FRONT_BODY_TIMEOUT": 10, "FRONT_KEEPALIVE_TIMEOUT": 15,
                "MAX_BODY_BYTES": 2 << 20, "BODY_BUFFER_BYTES": (2 << 20) * 9 // 8,
                "FRONT_UPSTREAM_PORT": upstream.url.rpartition(":")[2],
                "FRONT_DRAIN_SECONDS": 20}
    conf = run_dir / "nginx.conf"
    conf.write_text(Template(NGINX_TEMPLATE.read_text()).safe_substitute(settings))
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    process = _listening(processes, name, [nginx, "-c", str(conf), "-p", str(run_dir), "-e",
                                           "stderr"], env(), port, "/readyz")
    process.extra["upstream"] = upstream
    return process


def _listening(processes: Processes, name: str, argv: list[str], environ: dict[str, str],
               port: int, path: str) -> Process:
    """Start argv and wait until it answers `path` on 127.0.0.1:port."""
    process = processes.start(name, argv, environ)
    process.url = f"http://127.0.0.1:{port}"
    wait_until(lambda: answers(process.url + path), START_TIMEOUT, f"{name} {path}",
               process.popen)
    return process


def registry(processes: Processes) -> LocalRegistry:
    """The local registry as a process that `processes` stops; details in the SDK's shape."""
    handle = start_local_registry(processes.work / "registry-data",
                                  log_path=processes.work / "registry.log", details_shape="sdk")
    processes.started.append(Process("registry", handle.process, handle.log_path, handle.url))
    return handle


def sidecar_env(handle: LocalRegistry, model_root: Path, models: str, **extra: str) -> dict:
    """The environment of a sidecar following `models` in the local registry."""
    return env(**handle.env(), MODEL_ROOT=str(model_root), REGISTRY_MODELS=models,
               SIDECAR_LISTEN="127.0.0.1:0", LOG_LEVEL="info", **extra)


def sidecar(processes: Processes, handle: LocalRegistry, model_root: Path, models: str,
            **extra: str) -> Process:
    """`registry-sync run`, its status endpoint on a free port, once /healthz answers."""
    port = free_port()
    environ = sidecar_env(handle, model_root, models, **extra)
    environ["SIDECAR_LISTEN"] = f"127.0.0.1:{port}"
    process = processes.start("sidecar", [python(), "-m", "registry_sync.cli", "run"], environ)
    process.url = f"http://127.0.0.1:{port}"
    wait_until(lambda: answers(process.url + "/healthz"), START_TIMEOUT, "sidecar /healthz",
               process.popen)
    return process


def pod(processes: Processes, model_root: Path, model: str, folder: Path,
        interval: float, **extra: str) -> tuple[LocalRegistry, Process, Process]:
    """The whole pod: `model` 1.0.0 in Production, serving and a sidecar, once it is served."""
    handle = registry(processes)
    handle.register_folder(model, "1.0.0", folder, status="Production")
    app = serving(processes, "serving", model_root, ready=False)
    side = sidecar(processes, handle, model_root, model, SYNC_INTERVAL=str(interval),
                   SERVING_URL=app.extra["admin"], RELOAD_TOKEN=TOKEN, **extra)
    wait_until(lambda: answers(app.url + "/readyz"), 120, "first sync")
    return handle, app, side


def metric(text: str, name: str) -> float:
    """The sum of every sample of a metric in Prometheus text."""
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and not line.startswith("#"):
            head, _, value = line.rpartition(" ")
            if head.split("{")[0] == name:
                total += float(value)
    return total
