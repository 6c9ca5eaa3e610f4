"""Fixtures of the local registry tests: one real registry process per test module."""

from tests.support.registry import local_registry, local_registry_server  # noqa: F401
