"""MPM in the tests: serving's MPM settings, a stand-in CometMPM, and reading what arrived."""

from __future__ import annotations

import threading
from pathlib import Path
from types import SimpleNamespace

import requests
from prometheus_client.parser import text_string_to_metric_families

from devkit.registry import LocalRegistry
from serving.config import MpmConfig
from tests.support.serving_process import Serving


def mpm_env(registry: LocalRegistry, url: str | None = None, **extra: str) -> dict[str, str]:
    """Serving's settings that send MPM events to the local registry (or to url)."""
    return {"MPM_ENABLED": "true", "COMET_API_KEY": registry.api_key,
            "COMET_URL_OVERRIDE": url or registry.comet_url_override,
            "MPM_BATCH_SECONDS": "1", **extra}


def model_root(tmp_path: Path) -> Path:
    """An empty MODEL_ROOT under tmp_path."""
    root = tmp_path / "models"
    root.mkdir()
    return root


MODEL = SimpleNamespace(snapshot="s1", primary="clf", version="1.0.0",
                        schema=SimpleNamespace(names=("carat",)))


# Nothing listens on port 9 (discard) here: MPM is down.
DOWN = MpmConfig(enabled=True, api_key="k", url="http://127.0.0.1:9/clientlib/", send_timeout=1)


class FakeMpm:
    """Stands in for a CometMPM instance (the SDK's network side is tested in real workers);
    leaves out batching, uploads and the SDK's own queue."""

    def __init__(self, key, gate: threading.Event):
        self.key, self.gate, self.events, self.labels, self.ended = key, gate, [], [], False

    def log_event(self, prediction_id, **fields):
        self.gate.wait(30)
        self.events.append(prediction_id)

    def log_label(self, prediction_id, labels):
        self.gate.wait(30)
        self.labels.append((prediction_id, labels))

    def get_logging_errors(self, clear=True):
        return []

    def end(self, timeout=None):
        self.ended = True


def sample(server: Serving, name: str, **labels: str) -> float:
    """A sample of serving's /metrics (summed over workers), 0 if absent."""
    text = server.session.get(server.admin_url + "/metrics", timeout=10).text
    return sum(s.value for family in text_string_to_metric_families(text)
               for s in family.samples
               if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()))


def events_by_id(registry) -> dict[str, dict]:
    """The latest MPM events received, by prediction id."""
    answer = requests.get(registry.url + "/mpm/local/events", params={"limit": 1000},
                          headers=registry.headers, timeout=10).json()
    return {e["predictionId"]: e for e in answer["items"] if e["kind"] == "event"}
