"""Fixtures shared by the tests that talk to the stand-in Kubernetes API server."""

from __future__ import annotations

import pytest

from devkit.fake_kube_api import FakeApi, Server
from devkit.registry import local_registry, local_registry_server  # noqa: F401
from registry_sync.cluster.lease_api import KubeLease
from registry_sync.hooks import kube
from tests.support.kube import LEASE, NAMESPACE


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


@pytest.fixture
def lease(api, tmp_path):
    """Factory: a KubeLease client of the shared Lease, each with its own connection pool."""
    token = tmp_path / "token"
    token.write_text("service-account-token\n")
    made = []

    def connect() -> KubeLease:
        made.append(kube.api_client(api.url, token))
        return KubeLease(made[-1], NAMESPACE, LEASE)

    yield connect
    for client in made:
        client.close()
