"""Part 6: memory per serving worker with the demo model, the model's size, and smaller models.

RSS / USS / PSS of each gunicorn worker after 300 predictions, with the demo model and with no
model at all (what the libraries alone cost); the resident cost of importing each layer; the
model on disk; and what smaller tree settings would cost in held-out accuracy.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import numpy as np
import skops.io
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.pipeline import Pipeline

from devkit.sessions import spreading_session
from devkit.snapshots import build_snapshot
from serving import dataset, train
from serving.forest import compile_forest
from serving.schema import DIAMONDS
from serving.validation import encode

from . import models
from .common import VALID, Processes, median, mib, python
from .report import Section
from .servers import serving

LAYERS = {  # what a worker imports, cumulatively
    "python": "pass",
    "+ numpy": "import numpy",
    "+ flask, prometheus_client": "import numpy, flask, prometheus_client",
    "+ scikit-learn HGB, skops": "import numpy, flask, prometheus_client, skops.io; "
                                 "import sklearn.ensemble",
    "+ serving.app (everything)": "import serving.app",
}
SETTINGS = [(25, 127), (25, 31), (50, 31), (100, 15), (12, 31)]


def _workers(server) -> list[dict]:
    found = []
    for process in server.workers():
        info = process.memory_full_info()
        found.append({"rss": info.rss, "uss": info.uss, "pss": getattr(info, "pss", 0)})
    return found


def _loaded_workers(processes: Processes, name: str, root: Path, ready: bool) -> list[dict]:
    server = serving(processes, name, root, ready=ready)
    with spreading_session() as session:
        for _ in range(300):
            session.post(server.url + "/api/v1/predict", json=VALID, timeout=10)
    time.sleep(0.5)
    found = _workers(server)
    processes.stop(server)
    return found


def _layer_rss() -> list[list]:
    rows = []
    for name, code in LAYERS.items():
        script = f"{code}\nimport psutil; print(psutil.Process().memory_info().rss)"
        done = subprocess.run([python(), "-c", script], capture_output=True, text=True,
                              check=True, timeout=120)
        rows.append([name, mib(int(done.stdout.split()[-1]))])
    return rows


def _smaller_models(work: Path) -> list[list]:
    rows, labels = dataset.read()
    matrix, target = encode(DIAMONDS, rows, single=False), np.array(labels, dtype=object)
    train_rows, test_rows = train.split(len(rows), 42)
    found = []
    for iterations, leaves in SETTINGS:
        pipeline = Pipeline([("classifier", HistGradientBoostingClassifier(
            early_stopping=False, random_state=42, max_iter=iterations, max_leaf_nodes=leaves,
            learning_rate=0.3))])
        pipeline.fit(matrix[train_rows], target[train_rows])
        accuracy = float((pipeline.predict(matrix[test_rows]) == target[test_rows]).mean())
        path = work / f"hgb-{iterations}-{leaves}.skops"
        skops.io.dump(pipeline, path)
        forest = compile_forest(pipeline.steps[-1][1])
        one = matrix[:1]
        started = time.perf_counter()
        for _ in range(500):
            forest.predict_proba(one)
        micros = (time.perf_counter() - started) / 500 * 1e6
        found.append([f"{iterations} trees x {leaves} leaves", round(accuracy, 4),
                      round(path.stat().st_size / 1e6, 3), round(micros, 1)])
    return found


def run(work: Path) -> Section:
    """Measure workers with and without the model; size the model and its smaller variants."""
    section = Section("6. Memory per serving worker")
    trained = models.trained()
    root, empty = work / "root", work / "empty"
    build_snapshot(root, {models.CLASSIFIER: trained.pipeline}, "1.0.0")
    empty.mkdir()
    with Processes(work) as processes:
        with_model = _loaded_workers(processes, "serving", root, ready=True)
        without = _loaded_workers(processes, "no-model", empty, ready=False)
    rows = [[label] + [mib(median([w[k] for w in found])) for k in ("rss", "uss", "pss")]
            for label, found in (("with the demo model", with_model), ("no model", without))]
    section.table("each gunicorn worker after 300 predictions (median of the 2 workers, MiB)",
                  ["worker", "RSS", "USS", "PSS"], rows)
    section.table("RSS of a fresh Python process after importing each layer (MiB)",
                  ["imports", "RSS"], _layer_rss())
    disk = {p.name: p.stat().st_size for p in trained.pipeline.iterdir()}
    section.table("the demo model on disk (bytes)", ["file", "bytes"],
                  [[name, size] for name, size in sorted(disk.items())])
    smaller = _smaller_models(work)
    section.table("smaller tree settings (same data, split and seed): held-out accuracy, "
                  "size, one-row compiled latency", ["model", "accuracy", "skops MB",
                                                    "us per row"], smaller)
    model_cost = median([w["uss"] for w in with_model]) - median([w["uss"] for w in without])
    section.figures.update(with_model=with_model, without=without, disk=disk,
                           model_uss_bytes=model_cost)
    section.notes.append(
        f"**Reading.** The demo model costs about {mib(model_cost)} MiB of unique memory per "
        "worker (USS with the model minus USS without one); the rest is Python and its "
        "libraries, which serving's master imports before forking (serving/"
        "prefork.py), so workers share those pages: RSS counts them in every process, "
        "USS only once, PSS splits them. The model is not needlessly large "
        f"({smaller[0][2]} MB on disk for 25 trees of 127 leaves). What smaller settings "
        "cost in held-out accuracy: " + "; ".join(
            f"{name}: {size} MB, {100 * (accuracy - smaller[0][1]):+.2f} points"
            for name, accuracy, size, _ in smaller[1:])
        + ". None would change a worker's memory measurably, so the demo model stays.")
    return section
