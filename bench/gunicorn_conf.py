"""gunicorn settings for the benchmarks' baseline: serving as it ran before the front.

`gunicorn --config python:bench.gunicorn_conf serving.wsgi:app` with BIND, ADMIN_PORT (a second
bind on loopback), WEB_CONCURRENCY, LOG_LEVEL and PROMETHEUS_MULTIPROC_DIR read as the front reads
them (serving.config), and GUNICORN_THREADS (1: sync workers); the master prepares as the front's
does (serving.swap.prefork).
"""

import os

from serving.config import front_from_env
from serving.swap import prefork

_config = prefork.prepare(front_from_env())
_metrics_dir = _config.metrics_dir

wsgi_app = "serving.wsgi:app"
bind = [_config.bind, *([f"127.0.0.1:{_config.admin_port}"] if _config.admin_port else [])]
workers = _config.workers
threads = int(os.environ.get("GUNICORN_THREADS", "1"))  # the baseline's own knob, not serving's
worker_class = "gthread" if threads > 1 else "sync"
preload_app = False  # each worker loads its own model after the fork, with its own watcher
timeout = 30
graceful_timeout = 20
keepalive = 5
control_socket_disable = True
loglevel = _config.log_level
accesslog = None
errorlog = "-"


def on_starting(server):
    """Start every run with an empty metrics folder and a warm validator."""
    prefork.start(_config)


def child_exit(server, worker):
    """Drop a dead worker's live gauges from the shared metrics."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid, str(_metrics_dir))
