"""Experiment metrics as comet_ml 3.58.8 writes and reads them, under /api/rest/v2/.

    POST /write/experiment/metric          {"experimentKey", "metricName", "metricValue",
                                            "step"?, "epoch"?, "timestamp"? (ms), "context"?}
    GET  /experiment/metrics/get-metric    ?experimentKey=&metricName= -> {"metrics": [...]}
    GET  /experiment/metrics/summary       ?experimentKey= -> {"values": [{"name",
                                            "valueCurrent", "stepCurrent", "timestampCurrent",
                                            "valueMin", "valueMax"}]}

INFERRED: the write answers 200 with an empty object; any experiment key of 1-64 letters and
digits is accepted (Comet refuses an unknown one; ours need not know it). Kept in memory, the
latest 1,000 values per metric.
"""

from __future__ import annotations

import math
import re
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from flask import Blueprint, Response, current_app

from .web import ApiError, arg, json_body, json_response

bp = Blueprint("experiments", __name__)
EXPERIMENT_KEY = re.compile(r"^[0-9a-zA-Z_-]{1,64}$")
METRIC_NAME = re.compile(r"^[\w.\-/: ]{1,200}$")
KEPT = 1000
EXTENSION = "local_registry.experiments"


@dataclass
class MetricLog:
    """Metric values per (experiment key, metric name), oldest first."""

    values: dict[tuple[str, str], deque] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, experiment: str, name: str, point: dict[str, Any]) -> None:
        """Keep one value."""
        with self.lock:
            self.values.setdefault((experiment, name), deque(maxlen=KEPT)).append(point)

    def of(self, experiment: str, name: str | None = None) -> dict[str, list[dict[str, Any]]]:
        """Metric name -> values, for one experiment (one metric if named)."""
        with self.lock:
            return {n: list(points) for (key, n), points in self.values.items()
                    if key == experiment and (name is None or n == name)}


def metric_log() -> MetricLog:
    """The metrics of the current app (created on first use)."""
    return current_app.extensions.setdefault(EXTENSION, MetricLog())


def _point(body: dict[str, Any]) -> tuple[str, str, dict[str, Any]]:
    experiment, name = body.get("experimentKey"), body.get("metricName")
    if not isinstance(experiment, str) or not EXPERIMENT_KEY.match(experiment):
        raise ApiError(400, "experimentKey must be 1 to 64 letters, digits, dashes or underscores")
    if not isinstance(name, str) or not METRIC_NAME.match(name):
        raise ApiError(400, "metricName must be 1 to 200 word characters")
    value = body.get("metricValue")
    if isinstance(value, bool) or not isinstance(value, int | float | str) or \
            (isinstance(value, float) and not math.isfinite(value)):
        raise ApiError(400, "metricValue must be a finite number or a string")
    point = {"metricName": name, "metricValue": value,
             "timestamp": body.get("timestamp") or int(time.time() * 1000)}
    for optional in ("step", "epoch"):
        given = body.get(optional)
        if given is not None and (isinstance(given, bool) or not isinstance(given, int)):
            raise ApiError(400, f"{optional} must be a whole number")
        point[optional] = given
    point["runContext"] = body.get("context")
    return experiment, name, point


@bp.post("/write/experiment/metric")
def log_metric() -> Response:
    """Record one metric value on an experiment."""
    experiment, name, point = _point(json_body())
    metric_log().add(experiment, name, point)
    return json_response({})


@bp.get("/experiment/metrics/get-metric")
def get_metric() -> Response:
    """Every kept value of one metric of an experiment."""
    experiment, name = arg("experimentKey"), arg("metricName")
    return json_response({"experimentKey": experiment,
                          "metrics": metric_log().of(experiment, name).get(name, [])})


@bp.get("/experiment/metrics/summary")
def summary() -> Response:
    """The latest, lowest and highest value of each metric of an experiment."""
    values = []
    for name, points in sorted(metric_log().of(arg("experimentKey")).items()):
        numbers = [p["metricValue"] for p in points if not isinstance(p["metricValue"], str)]
        last = points[-1]
        values.append({"name": name, "valueCurrent": last["metricValue"],
                       "stepCurrent": last.get("step"), "timestampCurrent": last["timestamp"],
                       "valueMin": min(numbers, default=None),
                       "valueMax": max(numbers, default=None)})
    return json_response({"values": values})
