"""Fixtures of the monitoring tests: a real local registry and trained models."""

from __future__ import annotations

from devkit.models import trained_models  # noqa: F401
from devkit.registry import local_registry, local_registry_server  # noqa: F401
