"""The verdict where the decision is made: the comparison logged on the challenger's experiment.

Every VERDICT_INTERVAL seconds, when new inputs were compared, the all-workers figures go to
Comet as experiment metrics, one `POST /api/rest/v2/write/experiment/metric` each (the body
comet_ml 3.58.8 sends for log_metric: experimentKey, metricName, metricValue, step, timestamp in
ms), step = inputs compared so far. One worker sends (the one holding a lock file in the metrics
folder); the others wait their turn. Never on a request's path; a failed upload is logged and
tried again at the next interval.
"""

from __future__ import annotations

import fcntl
import threading
import time
from pathlib import Path
from typing import Any

import requests

from common.comet_server import server_root_or_default
from model_contract import api_key, logs
from serving.config import ChallengerConfig, ServingConfig
from serving.swap.background import ProcessThread

from .roles import Roles

log = logs.get(__name__)
METRIC_PATH = "/api/rest/v2/write/experiment/metric"
LOCK_NAME = "challenger-verdict.lock"
TIMEOUT = 10.0


def metric_url(settings: ChallengerConfig) -> str:
    """Where metrics are logged: the Comet server's scheme://host:port, then the REST path."""
    return server_root_or_default(settings.url, settings.api_key) + METRIC_PATH


def figures(roles: Roles) -> tuple[str, str, int, dict[str, float]] | None:
    """(experiment key, version, step, metrics) to log now, or None when there is nothing."""
    tracking = roles.tracking()
    if tracking is None or not tracking.challenger.experiment_key:
        return None
    model = tracking.challenger.model
    everyone = roles.all_workers(model.version)
    compared = everyone.compared + everyone.valued
    if not compared:
        return None
    window, _ = tracking.comparisons.figures()
    if everyone.valued:  # a regressor: how far the values are
        metrics = {"live_mean_abs_difference": round(everyone.mean_difference or 0.0, 6),
                   "live_mean_relative_difference": round(everyone.mean_relative or 0.0, 6)}
    else:
        metrics = {"live_agreement_with_champion": round(everyone.agreement or 0.0, 6),
                   "live_mean_abs_probability_diff": round(everyone.mean_gap or 0.0, 6)}
    metrics.update(live_inputs_compared=float(compared),
                   live_challenger_errors=float(everyone.failed))
    if window.mean_latency_ms is not None:
        metrics["live_challenger_latency_ms"] = window.mean_latency_ms
    return tracking.challenger.experiment_key, model.version, compared, metrics


class VerdictSender:
    """The background thread that logs the comparison on the challenger's Comet experiment."""

    def __init__(self, config: ServingConfig, roles: Roles,
                 session: requests.Session | None = None):
        settings = config.challenger
        self._roles, self._interval = roles, settings.verdict_interval
        self._key = api_key.key_to_send(settings.api_key or "")
        self._url = metric_url(settings)
        self._lock_path = Path(config.metrics_dir) / LOCK_NAME if config.metrics_dir else None
        self._session = session or requests.Session()
        self._sent: tuple[str, int] | None = None
        self._stop = threading.Event()
        self._sending = ProcessThread("verdict-sender", self._run, prepare=self._fresh)
        self._lock_file: Any = None

    def start(self) -> None:
        """Start the sender thread in this process (idempotent, fork-aware)."""
        self._sending.ensure_running()

    def _fresh(self) -> None:
        """Before the sender starts in this process: not stopped, the lock not held yet."""
        self._stop.clear()
        self._lock_file = None

    def stop(self) -> None:
        """Stop the sender thread."""
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                if self._is_sender():
                    self.send_once()
            except Exception as exc:  # this thread is the verdict's loop: it must not die
                log.error("verdict_failed", error_type=type(exc).__name__, error=str(exc))

    def _is_sender(self) -> bool:
        """Whether this worker holds the lock that makes it the one sender."""
        if self._lock_path is None or self._lock_file is not None:
            return True
        handle = open(self._lock_path, "a")  # noqa: SIM115 (held open while this worker lives)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            return False
        self._lock_file = handle
        return True

    def send_once(self) -> int:
        """Log the figures if inputs were compared since the last upload; metrics sent."""
        found = figures(self._roles)
        if found is None:
            return 0
        experiment, version, step, metrics = found
        if self._sent == (experiment, step):
            return 0
        stamp = int(time.time() * 1000)
        for name, value in metrics.items():
            body = {"experimentKey": experiment, "metricName": name, "metricValue": value,
                    "step": step, "timestamp": stamp}
            answer = self._session.post(self._url, json=body, timeout=TIMEOUT,
                                        headers={"Authorization": self._key})
            if answer.status_code != 200:
                log.warning("verdict_refused", status=answer.status_code, metric=name,
                            version=version)
                return 0
        self._sent = (experiment, step)
        log.info("verdict_sent", version=version, step=step, metrics=len(metrics))
        return len(metrics)
