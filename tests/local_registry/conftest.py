"""Fixtures of the local registry tests: one real registry process per test module.

These tests check the registry's own answers, status and tags in `details` included: their
registry answers in the "full" shape whatever the suite's default (test_endpoints checks "sdk").
"""

from collections.abc import Iterator

import pytest

from devkit.registry import (  # noqa: F401 - the fixture
    LocalRegistry,
    local_registry,
    running_local_registry,
)


@pytest.fixture(scope="module")
def local_registry_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRegistry]:
    """One local registry process for the whole test module, details in the full shape."""
    root = tmp_path_factory.mktemp("local-registry")
    with running_local_registry(root / "data", details_shape="full") as registry:
        yield registry
