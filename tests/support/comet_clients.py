"""The sidecar's Comet client pointed at the local registry, with test-sized timeouts."""

from __future__ import annotations

from registry_sync.config import CometSettings
from registry_sync.registries.comet.client import CometClient


def client_for(registry, sleeps=None, key=None, workspace=None, **settings) -> CometClient:
    """A client of the registry (its key unless another is given); sleeps recorded, not slept."""
    comet = CometSettings(url=registry.url, workspace=workspace or registry.workspace,
                          api_key=key or registry.api_key, api_key_file=None,
                          timeout=settings.pop("timeout", 5.0),
                          download_timeout=settings.pop("download_timeout", 5.0))
    return CometClient(comet, sleep=(sleeps.append if sleeps is not None else lambda _: None),
                       **settings)
