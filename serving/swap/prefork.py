"""What serving's master does before it forks the workers, under granian or gunicorn.

The libraries (not the app) are imported once in the master: workers fork with them in memory and
share those pages, about 110 MiB less unique memory per worker (bench/results.md). Each worker
still creates its app and loads its model after the fork. gc.freeze() keeps the collector from
writing to (and so copying) the shared objects. The Prometheus multiprocess folder and the
validation folder are chosen here, before any worker imports prometheus_client, and written to
os.environ: each worker reads its settings from the environment after the fork (serving.config),
so that is how the master hands them the folders it chose. The secrets are wiped from the
master's initial environment block (/proc/<pid>/environ, which the workers inherit); os.environ
keeps them for the workers' settings.
"""

from __future__ import annotations

import dataclasses
import gc
import importlib
import os
import shutil
import tempfile
from pathlib import Path

from serving.config import FrontConfig
from serving.swap import containment, zygote
from serving.telemetry import prediction_ids  # noqa: F401 (ids: key drawn here)

SHARED_LIBRARIES = ("numpy", "scipy.special", "flask", "sklearn.ensemble", "skops.io")
_warm: list[int | None] = []  # the warm validator started by prepare()


def prepare(config: FrontConfig) -> FrontConfig:
    """Choose the shared folders (the settings', else fresh ones) and hand them to the workers
    through the environment; import the libraries. The config with both folders set."""
    containment.scrub_environ()
    # Model calls are tiny; OpenMP threads per call would only fight the other workers for cores.
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(name, "1")  # written for the workers (and libraries), not read
    metrics_dir = config.metrics_dir or Path(tempfile.mkdtemp(prefix="serving-metrics-"))
    # Validation verdicts are shared by the workers: their folder is chosen before the fork.
    validation_dir = config.validation_dir or Path(
        tempfile.mkdtemp(prefix="serving-validations-"))
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
    os.environ["VALIDATION_DIR"] = str(validation_dir)
    # Started first: it imports the libraries itself (it is exec'd), beside the master's imports.
    _warm.append(zygote.start(validation_dir))
    for module in SHARED_LIBRARIES:
        importlib.import_module(module)
    gc.freeze()
    return dataclasses.replace(config, metrics_dir=metrics_dir, validation_dir=validation_dir)


def start(config: FrontConfig) -> int | None:
    """Empty the metrics folder (stale files would add old counts); the warm validator's pid
    (started by prepare; None: not started): its parent must reap it should it die.

    Call with prepare's config, before the workers exist.
    """
    assert config.metrics_dir is not None and config.validation_dir is not None
    config.metrics_dir.mkdir(parents=True, exist_ok=True)
    for entry in config.metrics_dir.iterdir():
        if entry.is_dir():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
    return _warm[0] if _warm else zygote.start(config.validation_dir)
