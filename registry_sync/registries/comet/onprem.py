"""On-premises Comet, with the SDK's settings and meaning (comet_ml 3.58.8, config_map.py).

- COMET_ALLOW_HEADER_NAME / COMET_ALLOW_HEADER_VALUE: a header a gateway in front of Comet
  requires, sent on every request to the Comet server beside the key (the SDK:
  connection/http_session.py), never to a presigned storage link. Both or neither.
- COMET_INCLUDE_CUSTOM_CA_BUNDLE: a PEM file, or a folder of them, trusted for HTTPS besides the
  usual public roots (the SDK merges it with certifi's bundle: connection/ca_certs.py). Loaded
  into an SSL context here, so nothing is written to a read-only root filesystem.
"""

from __future__ import annotations

import re
import ssl
from pathlib import Path

import certifi
import requests
from requests.adapters import HTTPAdapter

from ...errors import ConfigError

HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]{1,128}")  # an HTTP token (RFC 9110)
MAX_HEADER_VALUE = 4096


def allow_header(name: str | None, value: str | None) -> tuple[str, str] | None:
    """The (name, value) of the allow header, or None; ConfigError naming the variable."""
    if not name and not value:
        return None
    if not name or not value:
        missing = "COMET_ALLOW_HEADER_NAME" if not name else "COMET_ALLOW_HEADER_VALUE"
        raise ConfigError(f"{missing} is required when the other allow-header setting is set")
    if not HEADER_NAME.fullmatch(name):
        raise ConfigError(f"COMET_ALLOW_HEADER_NAME is {name[:40]!r}: expected an HTTP header "
                          "name (letters, digits, '-')")
    if len(value) > MAX_HEADER_VALUE or not value.isprintable():
        raise ConfigError("COMET_ALLOW_HEADER_VALUE (hidden) must be printable text of at most "
                          f"{MAX_HEADER_VALUE} characters, without line breaks")
    return name, value


def trust_context(bundle: Path) -> ssl.SSLContext:
    """An SSL context trusting the public roots and the bundle (a file, or a folder's files)."""
    context = ssl.create_default_context(cafile=certifi.where())
    files = sorted(p for p in bundle.iterdir() if p.is_file()) if bundle.is_dir() else [bundle]
    if not files:
        raise ConfigError(f"COMET_INCLUDE_CUSTOM_CA_BUNDLE={bundle}: the folder holds no file")
    for path in files:
        try:
            context.load_verify_locations(cafile=str(path))
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"COMET_INCLUDE_CUSTOM_CA_BUNDLE: {path} is not a readable PEM "
                              f"certificate bundle ({type(exc).__name__})") from None
    return context


class TrustAdapter(HTTPAdapter):
    """HTTPS through a given SSL context."""

    def __init__(self, context: ssl.SSLContext):
        self._context = context
        super().__init__()

    def init_poolmanager(self, *args, **kwargs):
        """Every pool this adapter makes verifies with the context."""
        kwargs["ssl_context"] = self._context
        return super().init_poolmanager(*args, **kwargs)


def prepare(session: requests.Session, bundle: Path | None) -> None:
    """Have a session trust the custom CA bundle, when one is set."""
    if bundle is not None:
        session.mount("https://", TrustAdapter(trust_context(bundle)))
