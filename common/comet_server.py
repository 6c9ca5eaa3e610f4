"""The Comet server a process talks to, computed one way for the sidecar and serving alike.

As the comet_ml SDK: COMET_URL_OVERRIDE if set, else the server the API key carries in its
suffix (`<key>*<base64 {"baseUrl": ...}>`), else Comet's own; only scheme://host:port is kept.
"""

from __future__ import annotations

from model_contract import api_key

from .settings import url_root

DEFAULT_SERVER = api_key.DEFAULT_SERVER
MalformedKey = api_key.MalformedKey


class MalformedBaseUrl(ValueError):
    """The key's suffix names a baseUrl that is not an http(s) URL with a host."""


def server_root(override: str | None, key: str) -> str:
    """scheme://host:port of the server; MalformedKey or MalformedBaseUrl on a bad key suffix."""
    carried = api_key.base_url(key)  # parsed even with an override: a malformed key is an error
    if override:
        return url_root(override)
    if carried is None:
        return DEFAULT_SERVER
    try:
        return url_root(carried)
    except ValueError as exc:
        raise MalformedBaseUrl(str(exc)) from None


def server_root_or_default(override: str | None, key: str | None) -> str:
    """The server, or Comet's own when the key or override is malformed (the SDK then refuses
    the key itself: serving's MPM and verdict uploads are off, never a crash)."""
    try:
        return server_root(override, key or "")
    except ValueError:
        return DEFAULT_SERVER
