"""Fixtures of the monitoring tests: a real local registry, trained models, serving with MPM."""

from __future__ import annotations

from pathlib import Path

from devkit.models import trained_models  # noqa: F401
from devkit.registry import LocalRegistry, local_registry, local_registry_server  # noqa: F401


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
