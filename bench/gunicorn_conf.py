"""gunicorn settings for the benchmarks' baseline: serving as it ran before the front.

`gunicorn --config python:bench.gunicorn_conf serving.wsgi:app` with BIND, ADMIN_PORT (a second
bind on loopback), WEB_CONCURRENCY, GUNICORN_THREADS (1: sync workers), LOG_LEVEL and
PROMETHEUS_MULTIPROC_DIR from the environment; the master prepares as the front's does
(serving.swap.prefork).
"""

import os
from pathlib import Path

from serving.swap import prefork

_metrics_dir = prefork.prepare(
    Path(os.environ["PROMETHEUS_MULTIPROC_DIR"])
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR") else None)
_admin_port = os.environ.get("ADMIN_PORT")

wsgi_app = "serving.wsgi:app"
bind = [os.environ.get("BIND", "127.0.0.1:8080"),
        *([f"127.0.0.1:{_admin_port}"] if _admin_port else [])]
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
threads = int(os.environ.get("GUNICORN_THREADS", "1"))
worker_class = "gthread" if threads > 1 else "sync"
preload_app = False  # each worker loads its own model after the fork, with its own watcher
timeout = 30
graceful_timeout = 20
keepalive = 5
control_socket_disable = True
loglevel = os.environ.get("LOG_LEVEL", "warning")
accesslog = None
errorlog = "-"


def on_starting(server):
    """Start every run with an empty metrics folder and a warm validator."""
    prefork.start(_metrics_dir)


def child_exit(server, worker):
    """Drop a dead worker's live gauges from the shared metrics."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid, str(_metrics_dir))
