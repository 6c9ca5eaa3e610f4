"""gunicorn settings for serving: `gunicorn --config python:serving.gunicorn_conf serving.wsgi:app`.

Settings come from the environment through serving.config (BIND, ADMIN_PORT, WEB_CONCURRENCY,
GUNICORN_THREADS, LOG_LEVEL, PROMETHEUS_MULTIPROC_DIR). This file also prepares the Prometheus
multiprocess folder, which must exist before any worker imports prometheus_client.
"""

import sys

from serving import prefork
from serving.config import gunicorn_from_env
from serving.errors import ConfigError

try:
    _settings = gunicorn_from_env()
except ConfigError as _exc:
    sys.exit(f"serving: {_exc}")

_metrics_dir = prefork.prepare(_settings.metrics_dir)

wsgi_app = "serving.wsgi:app"
bind = list(_settings.binds)
workers = _settings.workers
threads = _settings.threads
worker_class = "gthread" if threads > 1 else "sync"
preload_app = False  # each worker loads its own model after the fork, with its own watcher
timeout = 30
graceful_timeout = 20
keepalive = 5
max_requests = 0
control_socket_disable = True  # no runtime control socket under $HOME (read-only in k8s)
loglevel = _settings.log_level
accesslog = None
errorlog = "-"
logger_class = "serving.gunicorn_logging.JsonLogger"


def on_starting(server):
    """Start every run with an empty metrics folder and a warm validator."""
    prefork.start(_metrics_dir)


def post_worker_init(worker):
    """Make sure this worker watches `current` and `candidate` (a thread started before a fork
    would be gone)."""
    extensions = getattr(getattr(worker, "wsgi", None), "extensions", {})
    watcher = extensions.get("serving.roles") or extensions.get("serving.holder")
    if watcher is not None:
        watcher.start()


def child_exit(server, worker):
    """Drop a dead worker's live gauges from the shared metrics."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid, str(_metrics_dir))
