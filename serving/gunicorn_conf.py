"""gunicorn settings for serving: `gunicorn --config python:serving.gunicorn_conf serving.wsgi:app`.

Settings come from the environment through serving.config (BIND, ADMIN_PORT, WEB_CONCURRENCY,
GUNICORN_THREADS, LOG_LEVEL, PROMETHEUS_MULTIPROC_DIR). This file also prepares the Prometheus
multiprocess folder, which must exist before any worker imports prometheus_client.
"""

import gc
import importlib
import os
import shutil
import sys
import tempfile
from pathlib import Path

from serving.config import gunicorn_from_env
from serving.errors import ConfigError

# Model calls are tiny; OpenMP threads per call would only fight the other workers for cores.
for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")

try:
    _settings = gunicorn_from_env()
except ConfigError as _exc:
    sys.exit(f"serving: {_exc}")

if _settings.metrics_dir is None:
    _metrics_dir = Path(tempfile.mkdtemp(prefix="serving-metrics-"))
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(_metrics_dir)
else:
    _metrics_dir = _settings.metrics_dir

# Validation verdicts are shared by the workers: their folder is chosen here, before the fork.
if not os.environ.get("VALIDATION_DIR", "").strip():
    os.environ["VALIDATION_DIR"] = tempfile.mkdtemp(prefix="serving-validations-")

# The libraries (not the app) are imported once, here in the master: workers fork with them in
# memory and share those pages, about 110 MiB less unique memory per worker (bench/results.md).
# Each worker still creates its app and loads its model after the fork. gc.freeze() keeps the
# collector from writing to (and so copying) the shared objects.
for _module in ("numpy", "scipy.special", "flask", "sklearn.ensemble", "skops.io"):
    importlib.import_module(_module)
gc.freeze()

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
    """Start every run with an empty metrics folder (stale files would add old counts)."""
    _metrics_dir.mkdir(parents=True, exist_ok=True)
    for entry in _metrics_dir.iterdir():
        if entry.is_dir():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
    # Forked now (one thread, libraries imported, no sockets yet): validations start warm.
    from serving import zygote

    zygote.start(Path(os.environ["VALIDATION_DIR"]))


def post_worker_init(worker):
    """Make sure this worker watches `current` (a thread started before a fork would be gone)."""
    extensions = getattr(getattr(worker, "wsgi", None), "extensions", {})
    holder = extensions.get("serving.holder")
    if holder is not None:
        holder.start()


def child_exit(server, worker):
    """Drop a dead worker's live gauges from the shared metrics."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid, str(_metrics_dir))
