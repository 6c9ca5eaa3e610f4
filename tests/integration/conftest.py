"""Integration tests run real processes: the local registry, the sidecar, gunicorn."""

from tests.support.registry import local_registry, local_registry_server  # noqa: F401
