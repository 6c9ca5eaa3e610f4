"""What serving needs of Comet's comet_mpm SDK: an instance per model version, opened safely.

The SDK's own ping has no timeout (a silent server would hang the caller for ever), so MPM is
pinged here first, with MPM_SEND_TIMEOUT. The SDK is imported only when an instance is opened:
it imports pandas, which the sender thread pays for, not the worker's start.
"""

from __future__ import annotations

import atexit
import logging
from dataclasses import dataclass
from typing import Any

import requests

from common.comet_server import server_root_or_default
from model_contract import logs
from serving.config import MpmConfig

log = logs.get(__name__)


@dataclass(frozen=True)
class ModelKey:
    """What MPM knows a model by: workspace, registry model name, version."""

    workspace: str
    name: str
    version: str


def open_client(config: MpmConfig, key: ModelKey) -> Any:
    """A CometMPM instance for key's workspace, model and version; None if MPM does not answer."""
    if not ping(config):
        return None
    from comet_mpm import CometMPM

    _adopt_sdk_logs()
    client = CometMPM(**client_options(config, key))
    if client.disabled:  # the SDK disables itself for good when the ping answers 404
        return None
    _bound_upload_time(client, config.send_timeout)
    return client


def client_options(config: MpmConfig, key: ModelKey) -> dict[str, Any]:
    """CometMPM's arguments; batch size and time only when ours are set (else the SDK's own
    COMET_MPM_MAX_BATCH_SIZE / COMET_MPM_MAX_BATCH_TIME decide)."""
    return {"api_key": config.api_key, "workspace_name": key.workspace, "model_name": key.name,
            "model_version": key.version, "max_batch_size": config.batch_size,
            "max_batch_time": config.batch_seconds}


def ping(config: MpmConfig) -> bool:
    """Whether MPM answers its ping within MPM_SEND_TIMEOUT."""
    url = mpm_root(config) + "isAlive/ping"
    try:
        answer = requests.get(url, headers={"Authorization": config.api_key or ""},
                              timeout=config.send_timeout)
    except requests.RequestException as exc:
        log.warning("mpm_unreachable", url=url, error_type=type(exc).__name__)
        return False
    if answer.status_code != 200:
        log.warning("mpm_unavailable", url=url, status=answer.status_code)
    return answer.status_code == 200


def mpm_root(config: MpmConfig) -> str:
    """Where MPM answers: the Comet server's scheme://host:port, then /mpm/ (as the SDK)."""
    return server_root_or_default(config.url, config.api_key) + "/mpm/"


def _adopt_sdk_logs() -> None:
    """The SDK logs plain text to a console handler of its own: route it to our JSON logs,
    masked like every line."""
    sdk = logging.getLogger("comet_mpm")
    for handler in list(sdk.handlers):
        sdk.removeHandler(handler)
    sdk.propagate = True


# comet_mpm 1.5.x internals (pinned in pyproject.toml): the SDK has no public way to bound its
# queue or its upload time, and both are needed so that a stalled Comet costs only events.
def backlog(client: Any) -> int:
    """Events the SDK holds and Comet has not accepted yet."""
    pending = getattr(getattr(client, "_sender", None), "_pending_depth", None)
    return pending() if callable(pending) else 0


def end(client: Any, timeout: int) -> None:
    """End an instance (its events flushed) and drop the SDK's atexit reference to it, which
    would otherwise keep every instance ever opened."""
    try:
        client.end(timeout=timeout)
    finally:
        on_end = getattr(client, "_on_end", None)
        if on_end is not None:
            atexit.unregister(on_end)


def _bound_upload_time(client: Any, seconds: int) -> None:
    """Cap one upload's time (default 300 s); read when the SDK's sender thread starts."""
    sender = getattr(client, "_sender", None)
    if sender is not None and hasattr(sender, "batch_sending_timeout"):
        sender.batch_sending_timeout = seconds
