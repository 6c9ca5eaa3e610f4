"""Comet's settings: where the registry is and how to authenticate to it, checked at start."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common import comet_server
from model_contract import api_key

from ...errors import ConfigError, SecretUnavailable
from ...secret_files import check_secret_file, read_secret_file
from ...settings import require, setting
from . import onprem

DEFAULT_COMET_URL = comet_server.DEFAULT_SERVER


@dataclass(frozen=True)
class CometSettings:
    """Where the registry is and how to authenticate to it."""

    url: str
    workspace: str
    api_key: str | None
    api_key_file: Path | None
    timeout: float = setting("COMET_TIMEOUT")
    download_timeout: float = setting("COMET_DOWNLOAD_TIMEOUT")
    min_download_rate: int = setting("COMET_MIN_DOWNLOAD_RATE")
    allow_header: tuple[str, str] | None = field(default=None, repr=False)
    ca_bundle: Path | None = None
    s3_endpoint: str = ""  # AWS_ENDPOINT_URL and AWS_REGION: where s3:// remote assets are
    s3_region: str = ""

    def read_api_key(self) -> str:
        """The current API key: from its file when one is mounted (rotation without restart)."""
        if self.api_key_file is not None:
            return api_key.key_to_send(read_secret_file(self.api_key_file, "COMET_API_KEY_FILE"))
        assert self.api_key is not None
        return api_key.key_to_send(self.api_key)


def server_url(override: str | None, key: str, key_variable: str) -> str:
    """COMET_URL_OVERRIDE if set, else the server the key names, else Comet's own."""
    try:
        return comet_server.server_root(override, key)
    except comet_server.MalformedBaseUrl as exc:
        raise ConfigError(f"{key_variable}'s baseUrl is malformed: expected {exc}") from None
    except api_key.MalformedKey as exc:
        raise ConfigError(f"{key_variable} is malformed: expected {exc}") from None


def _ca_bundle(path: Path | None) -> Path | None:
    """The bundle, checked loadable now so a bad one fails at start naming the variable."""
    if path is None:
        return None
    if not path.exists():
        raise ConfigError(f"COMET_INCLUDE_CUSTOM_CA_BUNDLE={path}: no such file or folder")
    onprem.trust_context(path)
    return path


def comet_settings(values: Mapping[str, Any]) -> CometSettings:
    """Build the Comet settings, requiring a workspace and a key (inline or from a file)."""
    require(values, "COMET_WORKSPACE")
    if not values.get("COMET_API_KEY") and not values.get("COMET_API_KEY_FILE"):
        raise ConfigError("COMET_API_KEY (or COMET_API_KEY_FILE) is required: your Comet API key")
    settings = CometSettings(
        url=DEFAULT_COMET_URL, workspace=values["COMET_WORKSPACE"],
        api_key=values.get("COMET_API_KEY") or None, api_key_file=values.get("COMET_API_KEY_FILE"),
        timeout=values["COMET_TIMEOUT"], download_timeout=values["COMET_DOWNLOAD_TIMEOUT"],
        min_download_rate=values["COMET_MIN_DOWNLOAD_RATE"],
        allow_header=onprem.allow_header(values.get("COMET_ALLOW_HEADER_NAME"),
                                         values.get("COMET_ALLOW_HEADER_VALUE")),
        ca_bundle=_ca_bundle(values.get("COMET_INCLUDE_CUSTOM_CA_BUNDLE")),
        s3_endpoint=values.get("AWS_ENDPOINT_URL") or "", s3_region=values.get("AWS_REGION") or "",
    )
    key_variable = "COMET_API_KEY_FILE" if settings.api_key_file else "COMET_API_KEY"
    check_secret_file(settings.api_key_file, key_variable)
    try:
        raw_key = (read_secret_file(settings.api_key_file, key_variable)
                   if settings.api_key_file else settings.api_key or "")
    except SecretUnavailable as exc:
        if not values.get("COMET_URL_OVERRIDE"):  # the key names the server: it is needed now
            raise ConfigError(f"{exc} (without COMET_URL_OVERRIDE the server is read from the "
                              "key)") from None
        raw_key = ""  # mid-rotation: every pass reads it again, a failed pass until it is back
    url = server_url(values.get("COMET_URL_OVERRIDE"), raw_key, key_variable)
    return dataclasses.replace(settings, url=url)
