"""Followers' champion figures, reported to the leader where there is no Prometheus (issue 29).

Without PROMETHEUS_URL the leader's guard judges the Deployment's figures, not its own pod's:
at each reading a follower POSTs its serving's champion counters to the leader's sidecar
(`/-/guard-figures`, with the peer credential derived from DECISION_KEY, only to the peer URL of
an authentic decision that is the Lease holder's pod IP), and the leader adds the latest fresh
report of each pod to its own reading. A report is bounded and checked before it is kept: at
most MAX_REPORT_BYTES, MAX_SETS version sets (the busiest), MAX_BUCKETS buckets, MAX_CLASSES
classes, finite non-negative counts, plain names; the leader keeps one per pod, MAX_PODS pods,
and drops a report older than its max age (a pod gone lowers the sums: the guard then starts
the snapshot's figures afresh, as for a restart).
"""

from __future__ import annotations

import json
import math
import re
import threading
import time
from collections.abc import Callable
from typing import Any

import requests

from model_contract import logs
from registry_sync.guard.figures import Figures, plain_label

log = logs.get(__name__)
PATH = "/-/guard-figures"
MAX_REPORT_BYTES, MAX_SETS, MAX_BUCKETS, MAX_CLASSES, MAX_PODS = 64 * 1024, 16, 32, 21, 64
_SET = re.compile(r"^[0-9a-f]{12}$")
_POD = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")


class ReportError(ValueError):
    """A report that cannot be kept as sent (the message names the field)."""


def encode(pod: str, figures: dict[str, Figures]) -> bytes:
    """A follower's report: its pod name and the busiest MAX_SETS version sets' counters."""
    busiest = sorted(figures.items(), key=lambda kv: kv[1].requests, reverse=True)[:MAX_SETS]
    return json.dumps({"pod": pod, "sets": {k: {
        "ok": f.ok, "failed": f.failed, "buckets": [["inf" if math.isinf(le) else le, n]
                                                   for le, n in f.buckets[:MAX_BUCKETS]],
        "classes": dict(list(f.classes.items())[:MAX_CLASSES]), "values": list(f.values)}
        for k, f in busiest}}).encode()


def _count(raw: Any, where: str, signed: bool = False) -> float:
    if isinstance(raw, bool) or not isinstance(raw, int | float) or not math.isfinite(raw) \
            or (raw < 0 and not signed):
        raise ReportError(f"{where} is not a finite{'' if signed else ' non-negative'} number")
    return float(raw)


def _figures(raw: Any, where: str) -> Figures:
    if not isinstance(raw, dict) or len(raw) > 5:
        raise ReportError(f"{where} is not an object of counters")
    buckets, classes, values = raw.get("buckets"), raw.get("classes"), raw.get("values")
    if not isinstance(buckets, list) or len(buckets) > MAX_BUCKETS or \
            not all(isinstance(b, list) and len(b) == 2 for b in buckets):
        raise ReportError(f"{where}.buckets is not a list of [bound, count]")
    if not isinstance(classes, dict) or len(classes) > MAX_CLASSES:
        raise ReportError(f"{where}.classes is not an object of at most {MAX_CLASSES} classes")
    if not isinstance(values, list) or len(values) != 3:
        raise ReportError(f"{where}.values is not [count, sum, squares]")
    bounds = [(float("inf") if b[0] == "inf" else _count(b[0], f"{where}.buckets"),
               _count(b[1], f"{where}.buckets")) for b in buckets]
    named = {plain_label(str(k)[:64]): _count(v, f"{where}.classes") for k, v in classes.items()}
    counted = (_count(values[0], f"{where}.values"), _count(values[1], f"{where}.values", True),
               _count(values[2], f"{where}.values"))
    return Figures(_count(raw.get("ok"), f"{where}.ok"),
                   _count(raw.get("failed"), f"{where}.failed"), tuple(sorted(bounds)), named,
                   counted)


def decode(body: bytes) -> tuple[str, dict[str, Figures]]:
    """A report's pod and figures; ReportError naming the field, never another exception."""
    if len(body) > MAX_REPORT_BYTES:
        raise ReportError(f"the report is over {MAX_REPORT_BYTES} bytes")
    try:
        raw = json.loads(body)
    except (ValueError, RecursionError):
        raise ReportError("the report is not JSON") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("pod"), str) \
            or not _POD.match(raw["pod"]):
        raise ReportError("pod is not a pod name")
    sets = raw.get("sets")
    if not isinstance(sets, dict) or len(sets) > MAX_SETS:
        raise ReportError(f"sets is not an object of at most {MAX_SETS} version sets")
    for key in sets:
        if not _SET.match(key):
            raise ReportError("sets names something that is not a version set digest")
    return raw["pod"], {k: _figures(v, f"sets[{k}]") for k, v in sets.items()}


class Reports:
    """The latest report of each pod, as the leader keeps them."""

    def __init__(self, max_age: float, clock: Callable[[], float] = time.monotonic):
        self._max_age, self._clock = max_age, clock
        self._latest: dict[str, tuple[float, dict[str, Figures]]] = {}
        self._lock = threading.Lock()

    def put(self, pod: str, figures: dict[str, Figures]) -> None:
        """Keep a pod's report (past MAX_PODS, the stalest goes)."""
        with self._lock:
            self._latest[pod] = (self._clock(), figures)
            if len(self._latest) > MAX_PODS:
                del self._latest[min(self._latest, key=lambda p: self._latest[p][0])]

    def fresh(self, besides: str) -> list[dict[str, Figures]]:
        """The reports younger than the max age, but the one pod `besides` (this one) sent."""
        now = self._clock()
        with self._lock:
            return [f for p, (at, f) in self._latest.items()
                    if now - at <= self._max_age and p != besides]


def summed(own: Callable[[], dict[str, Figures]], reports: Reports, pod: str,
           leading: Callable[[], bool]) -> Callable[[], dict[str, Figures]]:
    """A reader adding, while leading, the followers' fresh reports to this pod's figures (a
    follower reads, and reports, its own alone)."""
    def read() -> dict[str, Figures]:
        total = dict(own())
        if not leading():
            return total
        for report in reports.fresh(besides=pod):  # (a leader's report from its follower days)
            for key, figures in report.items():
                total[key] = total[key].plus(figures) if key in total else figures
        return total

    return read


def push(url: str, token: str, body: bytes, session: requests.Session) -> None:
    """Send a report to the leader's sidecar; a failure is logged (the next reading retries)."""
    try:
        response = session.post(url + PATH, data=body, timeout=(2.0, 5.0), headers={
            "Authorization": f"Bearer {token}", "Content-Type": "application/json"})
        if response.status_code != 202:
            log.warning("guard_report_refused", leader=url, status=response.status_code)
    except requests.RequestException as exc:
        log.warning("guard_report_failed", leader=url, error_type=type(exc).__name__)
