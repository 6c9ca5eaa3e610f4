"""Serving's Prometheus metrics, summed over the workers (multiprocess mode).

Multiprocess mode is chosen by prometheus_client when PROMETHEUS_MULTIPROC_DIR is set before
this module is imported: the master sets it up before it forks (serving.swap.prefork).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

from serving.swap.validator import process_alive

REGISTRY = CollectorRegistry()
# Called before rendering: counts a module keeps in the worker are written first.
BEFORE_RENDER: list[Callable[[], None]] = []
# prometheus_client's file of one process's live gauges: gauge_live<mode>_<pid>.db
LIVE_GAUGE_FILE = re.compile(r"gauge_live[a-z]+_(\d+)\.db")
_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)

REQUESTS = Counter("serving_requests", "HTTP requests by endpoint and outcome",
                   ["endpoint", "outcome"], registry=REGISTRY)
LATENCY = Histogram("serving_request_duration_seconds", "Time to answer a request",
                    ["endpoint", "outcome"], buckets=_LATENCY_BUCKETS, registry=REGISTRY)
PREDICTIONS = Counter("serving_predictions", "Rows predicted, by interface and model version",
                      ["interface", "version"], registry=REGISTRY)
CONNECTIONS_SHED = Counter("serving_connections_shed",
                           "Kept-alive connections closed after an answer to even out the workers",
                           registry=REGISTRY)
SWAPS = Counter("serving_model_swaps", "Swaps to a newly loaded snapshot", registry=REGISTRY)
REJECTIONS = Counter("serving_model_rejections", "Snapshots refused, by phase (validate, load)",
                     ["phase"], registry=REGISTRY)
# livemax: a version shows 1 while any live worker serves it, 0 once none does.
MODEL_INFO = Gauge("serving_model_info", "Registry model versions served (1) or no longer (0)",
                   ["snapshot", "model", "version", "layout"], multiprocess_mode="livemax",
                   registry=REGISTRY)
# livemin: 1 only when every live worker has a model.
LOADED = Gauge("serving_model_loaded", "1 when a model is loaded", multiprocess_mode="livemin",
               registry=REGISTRY)
MPM_EVENTS = Counter("serving_mpm_events", "Events handed to the Comet MPM SDK, by kind",
                     ["kind"], registry=REGISTRY)
MPM_DROPPED = Counter("serving_mpm_events_dropped",
                      "Events not sent to Comet MPM, by reason (queue_full, unavailable, "
                      "send_failed)", ["reason"], registry=REGISTRY)
MPM_QUEUE = Gauge("serving_mpm_queue_depth", "Events waiting in the workers' MPM queues",
                  multiprocess_mode="livesum", registry=REGISTRY)
LOAD_SECONDS = Gauge("serving_model_load_seconds", "Time the served snapshot took to load",
                     multiprocess_mode="livemax", registry=REGISTRY)


def outcome_of(status: int) -> str:
    """The outcome label of an HTTP status."""
    if status < 400:
        return "ok"
    if status == 503:
        return "unavailable"
    if status == 504:
        return "timeout"  # the model overran PREDICT_TIMEOUT on this input
    return "error" if status >= 500 else "client_error"


_children: dict[tuple[str, int], tuple] = {}


def observe_request(endpoint: str, status: int, seconds: float) -> None:
    """Count one answered request and its latency."""
    children = _children.get((endpoint, status))
    if children is None:
        outcome = outcome_of(status)
        children = (REQUESTS.labels(endpoint, outcome), LATENCY.labels(endpoint, outcome))
        _children[(endpoint, status)] = children
    children[0].inc()
    children[1].observe(seconds)


def model_swapped(old, new) -> None:
    """Record a swap: the new versions show 1, the old ones 0."""
    if old is not None:
        for name, version in old.versions.items():
            MODEL_INFO.labels(old.snapshot, name, version, old.layout).set(0)
    for name, version in new.versions.items():
        MODEL_INFO.labels(new.snapshot, name, version, new.layout).set(1)
    LOADED.set(1)
    LOAD_SECONDS.set(new.load_seconds)
    SWAPS.inc()


def render(metrics_dir: Path | None) -> tuple[bytes, str]:
    """The exposition text: all workers' values in multiprocess mode, else this process's."""
    for write_pending in BEFORE_RENDER:
        write_pending()
    if metrics_dir is None:
        return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
    forget_dead_workers(metrics_dir)
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=str(metrics_dir))
    try:
        return generate_latest(registry), CONTENT_TYPE_LATEST
    except FileNotFoundError:  # another worker dropped a dead one's file while this one read
        return generate_latest(registry), CONTENT_TYPE_LATEST


def forget_dead_workers(metrics_dir: Path) -> None:
    """Drop the live gauges of processes that are gone (a worker killed and replaced).

    gunicorn says so itself (child_exit); granian's master has no such hook, so the files'
    process ids are checked here, when metrics are read.
    """
    for name in os.listdir(metrics_dir):
        found = LIVE_GAUGE_FILE.fullmatch(name)
        if found and not process_alive(int(found.group(1))):
            # Not prometheus_client's mark_process_dead: two workers reading metrics at once
            # may both try, and its os.remove fails for the second.
            (metrics_dir / name).unlink(missing_ok=True)
