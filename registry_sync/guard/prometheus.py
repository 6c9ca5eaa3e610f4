"""The promotion guard's figures for a whole Deployment, from Prometheus (PROMETHEUS_URL).

Where every pod's serving is scraped by Prometheus, the leader's guard reads the champion's
counters summed over the pods (instant queries of the HTTP API, `GET /api/v1/query`), as
Flagger's analysis does, instead of its own pod's /metrics: one decision from all the traffic.
The sums are counters like one pod's, so the guard's window arithmetic is the same. A pod that
restarts lowers a sum for a moment; the guard then starts that snapshot's figures afresh.
"""

from __future__ import annotations

from collections.abc import Callable

import requests

from registry_sync.guard.figures import (
    MAX_METRICS_BYTES,
    PREFIX,
    VALUE_SAMPLES,
    Figures,
    MetricsUnreadable,
    plain_label,
)

QUERIES = {
    "requests": f"sum by (version_set, outcome) ({PREFIX}requests_total)",
    "buckets": f"sum by (version_set, le) ({PREFIX}model_seconds_bucket)",
    "answers": f"sum by (version_set, label) ({PREFIX}answers_total)",
    **{name: f"sum by (version_set) ({name})" for name in VALUE_SAMPLES},
}
TIMEOUT = (2.0, 5.0)


class PrometheusUnreadable(MetricsUnreadable):
    """Prometheus did not answer a query with a vector."""


def reader(url: str, session: requests.Session | None = None
           ) -> Callable[[], dict[str, Figures]]:
    """A function reading the Deployment's champion figures from the Prometheus at url."""
    session = session or requests.Session()
    endpoint = url.rstrip("/") + "/api/v1/query"

    def read() -> dict[str, Figures]:
        found = {name: _vector(session, endpoint, query) for name, query in QUERIES.items()}
        return _figures(found)

    return read


def _vector(session: requests.Session, endpoint: str, query: str) -> list[dict]:
    try:
        response = session.get(endpoint, params={"query": query}, timeout=TIMEOUT)
        if len(response.content) > MAX_METRICS_BYTES:
            raise PrometheusUnreadable(f"answer over {MAX_METRICS_BYTES} bytes")
        body = response.json()
    except (requests.RequestException, ValueError) as exc:
        raise PrometheusUnreadable(type(exc).__name__) from exc
    data = body.get("data") if isinstance(body, dict) else None
    if body.get("status") != "success" or not isinstance(data, dict) or \
            data.get("resultType") != "vector":
        raise PrometheusUnreadable(f"HTTP {response.status_code}: not a vector")
    return [r for r in data.get("result") or () if isinstance(r, dict)]


def _value(result: dict) -> float:
    try:
        return float(result["value"][1])
    except (KeyError, IndexError, TypeError, ValueError):
        return 0.0


def _figures(found: dict[str, list[dict]]) -> dict[str, Figures]:
    raw: dict[str, dict] = {}

    def entry(result: dict) -> dict | None:
        key = (result.get("metric") or {}).get("version_set")
        if not isinstance(key, str) or not key:
            return None
        return raw.setdefault(key, {"ok": 0.0, "failed": 0.0, "buckets": {}, "classes": {},
                                    "values": [0.0, 0.0, 0.0]})

    for result in found["requests"]:
        outcome = (result.get("metric") or {}).get("outcome")
        if (figures := entry(result)) is not None and outcome in ("ok", "failed"):
            figures[outcome] += _value(result)
    for result in found["buckets"]:
        le = (result.get("metric") or {}).get("le")
        if (figures := entry(result)) is not None and le is not None:
            try:
                figures["buckets"][float(le)] = _value(result)
            except ValueError:
                continue
    for result in found["answers"]:
        label = plain_label(str((result.get("metric") or {}).get("label", "")))
        if (figures := entry(result)) is not None:
            figures["classes"][label] = figures["classes"].get(label, 0.0) + _value(result)
    for index, name in enumerate(VALUE_SAMPLES):
        for result in found[name]:
            if (figures := entry(result)) is not None:
                figures["values"][index] = _value(result)
    return {s: Figures(e["ok"], e["failed"], tuple(sorted(e["buckets"].items())),
                       e["classes"], tuple(e["values"])) for s, e in raw.items()}
