"""Where the time of a request goes: py-spy on a worker under load, and CPU per request in-process.

py-spy samples one gunicorn worker while wrk loads the server; each sample is put in the bucket of
its innermost frame that belongs to a known layer (the model, our code, Flask/werkzeug,
gunicorn, metrics, JSON). The in-process figures call the WSGI apps directly (no sockets) and
count CPU time per request, ours against the textbook app on the same five pickles.
"""

from __future__ import annotations

import collections
import importlib
import io
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from .common import VALID, Process, median, wrk
from .report import Section

LAYERS = (  # (layer, substrings of a frame's file), first match from the innermost frame wins
    ("model (trees, scikit-learn, numpy)",
     ("serving/model/forest.py", "sklearn/", "numpy/", "scipy/")),
    ("our request code (validation, predictors, api)", ("serving/",)),
    ("metrics (prometheus_client)", ("prometheus_client/",)),
    ("JSON", ("json/", "orjson")),
    ("Flask / werkzeug", ("flask/", "werkzeug/")),
    ("gunicorn: socket I/O (accept, read, write, close)", ("socket.py", "gunicorn/util.py",
                                                          "gunicorn/workers/sync.py",
                                                          "selectors.py")),
    ("gunicorn: HTTP parsing and response", ("gunicorn/",)),
)


def _layer(frames: list[str]) -> str:
    for frame in reversed(frames):
        for layer, needles in LAYERS:
            if any(needle in frame for needle in needles):
                return layer
    return "other"


def py_spy() -> str | None:
    """The py-spy executable beside this interpreter, or on PATH."""
    beside = Path(sys.executable).with_name("py-spy")
    return str(beside) if beside.exists() else shutil.which("py-spy")


def under_load(server: Process, path: str, body: str, work: Path,
               seconds: int = 6) -> dict[str, Any] | None:
    """Sample one worker with py-spy while wrk loads the server; None without py-spy."""
    spy = py_spy()
    workers = server.workers()
    if spy is None or not workers:
        return None
    raw = work / "py-spy.txt"
    load = threading.Thread(target=wrk, args=(server.url + path, seconds + 3, 8, body, work))
    load.start()
    time.sleep(1)
    done = subprocess.run([spy, "record", "-p", str(workers[0].pid), "-d", str(seconds), "-r",
                           "400", "-f", "raw", "-o", str(raw), "--nonblocking"],
                          capture_output=True, text=True, check=False)
    load.join()
    if done.returncode != 0 or not raw.exists():
        return {"error": (done.stderr or done.stdout).strip()[-300:]}
    return summarize(raw.read_text())


def summarize(raw: str) -> dict[str, Any]:
    """Share of samples per layer, and the heaviest innermost frames."""
    layers: collections.Counter[str] = collections.Counter()
    leaves: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        frames = stack.split(";")
        total += int(count)
        layers[_layer(frames)] += int(count)
        leaves[frames[-1]] += int(count)
    return {"samples": total, "layers": dict(layers.most_common()),
            "leaves": dict(leaves.most_common(12))}


def report(section: Section, profile: dict[str, Any] | None) -> None:
    """Add the py-spy tables (or why there are none) to a section."""
    if not profile or "error" in profile:
        section.notes.append("py-spy profile not taken: "
                             + (profile or {}).get("error", "py-spy is not installed"))
        return
    total = profile["samples"] or 1
    section.table(f"py-spy, one worker of ours (2 sync workers) under wrk load, "
                  f"{profile['samples']} samples: share per layer (innermost frame)",
                  ["layer", "share"],
                  [[layer, f"{count / total:.0%}"] for layer, count in profile["layers"].items()])
    section.table("py-spy: heaviest innermost frames", ["frame", "share"],
                  [[f"`{frame}`", f"{count / total:.1%}"]
                   for frame, count in profile["leaves"].items()])
    section.figures["py_spy"] = profile


def _environ(path: str, body: bytes, method: str) -> dict[str, Any]:
    return {"REQUEST_METHOD": method, "PATH_INFO": path, "SCRIPT_NAME": "", "QUERY_STRING": "",
            "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "80", "SERVER_PROTOCOL": "HTTP/1.1",
            "CONTENT_TYPE": "application/json", "CONTENT_LENGTH": str(len(body)),
            "wsgi.input": io.BytesIO(body), "wsgi.url_scheme": "http", "wsgi.errors": sys.stderr,
            "wsgi.multithread": False, "wsgi.multiprocess": True, "wsgi.run_once": False,
            "wsgi.version": (1, 0), "REMOTE_ADDR": "127.0.0.1", "HTTP_HOST": "127.0.0.1"}


def cpu_per_call(call, count: int, rounds: int = 5) -> float:
    """Median over rounds of CPU microseconds per call."""
    call()
    results = []
    for _ in range(rounds):
        started = time.process_time()
        for _ in range(count):
            call()
        results.append((time.process_time() - started) / count * 1e6)
    return median(results)


def wsgi_call(app, path: str, body: bytes = b"", method: str = "POST",
              environ: dict[str, str] | None = None):
    """A function making one request straight into a WSGI app (no sockets); `environ` adds to
    or replaces the request's (headers as HTTP_*)."""

    def call() -> bytes:
        return b"".join(app({**_environ(path, body, method), **(environ or {})},
                            lambda *_: None))

    return call


def in_process(section: Section) -> None:
    """CPU per request in-process: ours (seed layout) against the textbook app, same pickles."""
    from devkit.snapshots import build_snapshot, seed_models

    from . import models
    from .common import workspace

    trained = models.trained()
    body = json.dumps(VALID).encode()
    with workspace("inproc") as work:
        root = work / "root"
        build_snapshot(root, seed_models(trained.seed), "1.0.0")
        ours = _ours_app(root)
        textbook = _textbook_app(trained.seed)
        predictor = ours.extensions["serving.swap.holder"].live.predictor
        matrix = predictor_row(ours)
        rows = [
            ["ours: GET /healthz (no model)", cpu_per_call(wsgi_call(ours, "/healthz", b"",
                                                                     "GET"), 2000)],
            ["ours: POST /api/v1/predict", cpu_per_call(wsgi_call(ours, "/api/v1/predict",
                                                                  body), 2000)],
            ["textbook: POST /predict", cpu_per_call(wsgi_call(textbook, "/predict", body), 300)],
            ["model alone: compiled trees, 1 row", cpu_per_call(
                lambda: predictor.predict(matrix), 3000)],
            ["model alone: scikit-learn predict_proba, 1 row", cpu_per_call(
                lambda: predictor._model.predict_proba(predictor._scaled(matrix)), 1000)],
        ]
        ours.extensions["serving.swap.holder"].stop()
    section.table("CPU per request in-process (WSGI called directly, no sockets), median of 5 "
                  "rounds", ["what", "CPU us per call"], rows)
    section.figures["in_process_us"] = {name: value for name, value in rows}


def predictor_row(app):
    """The default instance as the served model's one-row matrix."""
    from serving.inputs.checks import encode

    model = app.extensions["serving.swap.holder"].live
    return encode(model.schema, [VALID], single=True)


def _ours_app(root: Path):
    from serving.config import ServingConfig
    from serving.http.app import create_app

    return create_app(ServingConfig(model_root=root, watch=False, log_level="warning",
                                    validation_wait=60.0))


def _textbook_app(model_dir: Path):
    os.environ["TEXTBOOK_MODEL_DIR"] = str(model_dir)
    module = importlib.import_module("bench.textbook_app")
    return module.app
