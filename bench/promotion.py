"""Part 4: promotion-to-serve latency, for a 1 MB and a 200 MB model, the whole system running.

Local registry, sidecar (`registry-sync run`, SYNC_INTERVAL below) and serving (gunicorn, 2 sync
workers) run as in the pod. Each version is registered first; the clock starts at the status
POST that promotes it and stops at the first prediction answered with the new version. The
poll phase is random, so the wait for the next poll is anywhere in 0-1.1 intervals.
"""

from __future__ import annotations

import time
from pathlib import Path

import requests

from . import models
from .common import VALID, Processes, median
from .report import Section
from .servers import metric, pod

INTERVAL = 5.0
SIZES = {"1 MB": 2**20, "200 MB": 200 * 2**20}
ROUNDS = 2


def _first_answer_with(url: str, version: str, timeout: float) -> float:
    """perf_counter() of the first prediction naming this version."""
    deadline = time.perf_counter() + timeout
    with requests.Session() as session:
        while time.perf_counter() < deadline:
            response = session.post(url + "/api/v1/predict", json=VALID, timeout=10)
            if response.headers.get("X-Model-Version") == version:
                return time.perf_counter()
            time.sleep(0.01)
    raise RuntimeError(f"{version} not served after {timeout:.0f}s")


def _promote(handle, version: str, serving_url: str) -> float:
    """Seconds from the promoting status POST to the first answer from the new version."""
    item = handle.item_id(models.CLASSIFIER, version)
    started = time.perf_counter()
    handle.post("write/registry-model/item/status", {"status": "Production", "modelItemId": item})
    return _first_answer_with(serving_url, version, 4 * INTERVAL + 120) - started


def _register(handle, work: Path, folder: Path, version: str, size: int) -> None:
    padded = models.padded(folder, work / f"model-{version}", size, seed=len(version))
    archive = models.zip_model(padded, work / f"model-{version}.zip")
    handle.register_zip(models.CLASSIFIER, version, archive)
    archive.unlink()


def run(work: Path) -> Section:
    """Promote versions of each size in turn; time each until it is served."""
    section = Section("4. Promotion-to-serve latency")
    trained = models.trained()
    root = work / "models"
    results: dict[str, list[dict]] = {name: [] for name in SIZES}
    with Processes(work) as processes:
        handle, app, side = pod(processes, root, models.CLASSIFIER, trained.pipeline, INTERVAL)
        for i in range(ROUNDS):
            for n, (name, size) in enumerate(SIZES.items()):
                version = f"1.{i + 1}.{n}"
                folder = trained.alternative if (i + n) % 2 == 0 else trained.pipeline
                _register(handle, work, folder, version, size)
                seconds = _promote(handle, version, app.url)
                load = requests.get(app.url + "/api/v1/model", timeout=10).json()
                results[name].append({"version": version, "seconds": seconds,
                                      "load_seconds": load.get("load_seconds")})
        downloaded = metric(requests.get(side.url + "/metrics", timeout=10).text,
                            "registry_sync_downloaded_bytes_total")
    rows = []
    for name, got in results.items():
        latency = median([r["seconds"] for r in got])
        rows.append([name, latency, ", ".join(f"{r['seconds']:.2f}" for r in got),
                     median([r["load_seconds"] or 0 for r in got])])
        if name == "200 MB":
            section.target("promotion to first answer, 200 MB model", f"{latency:.2f} s",
                           f"<= {INTERVAL:g} s poll interval + 2 s", latency <= INTERVAL + 2,
                           evidence={"promotions": len(got), "bytes downloaded": downloaded})
    section.table(f"SYNC_INTERVAL={INTERVAL:g} s (poll phase random), {ROUNDS} promotions per "
                  "size", ["model", "median s", "each s", "serving load s (median)"], rows)
    section.figures.update(results=results, interval=INTERVAL, downloaded_bytes=downloaded)
    return section
