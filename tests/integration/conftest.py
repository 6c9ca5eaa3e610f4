"""Integration tests run real processes: the local registry, the sidecar, gunicorn."""

from devkit.registry import local_registry, local_registry_server  # noqa: F401
