"""Fixtures shared by the tests that talk to the stand-in Kubernetes API server."""

from __future__ import annotations

import pytest

from tests.k8s.fake_api import FakeApi, Server


@pytest.fixture
def no_proxy(monkeypatch):
    """Loopback requests must not go through a proxy of the environment."""
    for name in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY",
                 "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def api(no_proxy):
    """A running stand-in API server."""
    with Server(FakeApi()) as running:
        yield running
