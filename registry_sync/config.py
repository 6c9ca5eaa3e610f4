"""Configuration: read once, from flags or the environment, into frozen typed objects.

This is the only module of registry-sync that reads os.environ. Every setting is declared once
in settings.py, with its flag twin (the flag wins). A missing or malformed setting raises
ConfigError naming the variable and what it expects; the CLI turns that into one line, exit 2.
"""

from __future__ import annotations

import argparse
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from model_contract import logs
from registry_sync.guard.figures import Thresholds
from registry_sync.guard.watch import GuardSettings

from .cluster.election import ElectionSettings
from .errors import ConfigError, SecretUnavailable
from .registries.comet.settings import CometSettings, comet_settings
from .secret_files import check_secret_file, read_secret_file
from .settings import (  # noqa: F401 - the table's readers, as config.X for the commands
    COMET_NAMES,
    SETTINGS,
    SYNC_NAMES,
    add_flags,
    read,
    require,
    setting,
)


@dataclass(frozen=True)
class ArchiveLimits:
    """Caps that a downloaded zip must stay within."""

    max_bytes: int = setting("MAX_MODEL_BYTES")
    max_entries: int = setting("MAX_ZIP_ENTRIES")
    max_ratio: float = setting("MAX_COMPRESSION_RATIO")


@dataclass(frozen=True)
class SyncConfig:
    """Everything the sync daemon needs, validated."""

    comet: CometSettings
    model_root: Path
    models: tuple[str, ...]
    status: str
    tag: str
    grouping: str
    interval: float
    max_backoff: float
    init_max_failures: int
    keep_snapshots: int
    limits: ArchiveLimits
    serving_url: str
    reload_token: str  # as read at start; read_reload_token() gives the current one
    listen: tuple[str, int]
    log_level: str
    kube: dict[str, Any] | None = None
    election: ElectionSettings | None = None  # None: every sidecar polls on its own
    peer_url: str = ""  # http://POD_IP:port where the other replicas fetch our files
    kube_api_url: str = ""
    kube_token_file: Path = setting("KUBERNETES_TOKEN_FILE")
    reload_token_file: Path | None = None
    validation_deadline: float = setting("VALIDATION_DEADLINE")
    candidate_status: str = ""  # the challenger's status; empty: none (the CLI default: Staging)
    decision_key: str = ""  # as read at start; read_decision_key() gives the current one
    decision_key_file: Path | None = None
    step_down_after: float = setting("LEADER_STEP_DOWN_AFTER")
    poll_now_min_interval: float = setting("POLL_NOW_MIN_INTERVAL")
    guard: GuardSettings = field(default_factory=GuardSettings)

    @property
    def registry_url(self) -> str:
        """The registry's server, for the logs."""
        return self.comet.url

    def read_decision_key(self) -> bytes:
        """The current decision key ('' when unreadable now: every decision is then refused)."""
        if self.decision_key_file is not None:
            try:
                key = read_secret_file(self.decision_key_file, "DECISION_KEY_FILE").encode()
            except SecretUnavailable:
                return b""  # mid-rotation: decisions are refused, the follower asks Comet
            return key if len(key) >= MIN_DECISION_KEY else b""  # too short to trust: refused
        return self.decision_key.encode()

    def read_reload_token(self) -> str:
        """The current reload token: from its file when one is mounted (re-read on each use)."""
        if self.reload_token_file is not None:
            return read_secret_file(self.reload_token_file, "RELOAD_TOKEN_FILE")
        return self.reload_token


def sync_config(args: argparse.Namespace, environ: Mapping[str, str] | None = None) -> SyncConfig:
    """Read and validate the daemon's configuration."""
    values = read(args, os.environ if environ is None else environ, SYNC_NAMES)
    require(values, "MODEL_ROOT", "REGISTRY_MODELS")
    token, token_file = _secret_at_start(values, "RELOAD_TOKEN")
    serving_url = values["SERVING_URL"]
    if serving_url and not token and not token_file:
        raise ConfigError("RELOAD_TOKEN (or RELOAD_TOKEN_FILE) is required with SERVING_URL")
    return SyncConfig(
        comet=comet_settings(values),
        model_root=values["MODEL_ROOT"].absolute(),
        models=values["REGISTRY_MODELS"],
        status=values["REGISTRY_STATUS"],
        tag=values["REGISTRY_TAG"],
        grouping=values["SYNC_GROUPING"],
        interval=values["SYNC_INTERVAL"],
        max_backoff=values["SYNC_MAX_BACKOFF"],
        init_max_failures=values["INIT_MAX_FAILURES"],
        keep_snapshots=values["KEEP_SNAPSHOTS"],
        limits=ArchiveLimits(values["MAX_MODEL_BYTES"], values["MAX_ZIP_ENTRIES"],
                             values["MAX_COMPRESSION_RATIO"]),
        serving_url=serving_url,
        reload_token=token,
        listen=values["SIDECAR_LISTEN"],
        log_level=values["LOG_LEVEL"],
        kube=_kube_settings(values),
        election=election_settings(values),
        peer_url=_peer_url(values),
        kube_api_url=values["KUBERNETES_API_URL"] or _service_url(values),
        kube_token_file=values["KUBERNETES_TOKEN_FILE"],
        reload_token_file=token_file,
        validation_deadline=values["VALIDATION_DEADLINE"],
        candidate_status=values["REGISTRY_CANDIDATE_STATUS"],
        decision_key=_decision_key(values),
        decision_key_file=values.get("DECISION_KEY_FILE"),
        step_down_after=values["LEADER_STEP_DOWN_AFTER"],
        poll_now_min_interval=values["POLL_NOW_MIN_INTERVAL"],
        guard=guard_settings(values),
    )


def guard_settings(values: Mapping[str, Any]) -> GuardSettings:
    """The promotion guard's settings (registry_sync.guard)."""
    return GuardSettings(
        enabled=values["GUARD_ENABLED"], window=values["GUARD_WINDOW"],
        sample_interval=values["GUARD_SAMPLE_INTERVAL"],
        thresholds=Thresholds(values["GUARD_MIN_REQUESTS"], values["GUARD_MAX_ERROR_RATE"],
                              values["GUARD_MAX_LATENCY_RATIO"], values["GUARD_MIN_LATENCY_MS"],
                              values["GUARD_MAX_SHARE_SHIFT"], values["GUARD_MAX_MEAN_SHIFT"],
                              values["GUARD_MAX_SPREAD_RATIO"]),
        comet_tag=values["GUARD_COMET_TAG"],
        prometheus_url=values["PROMETHEUS_URL"])


MIN_DECISION_KEY = 16  # characters


def _secret_at_start(values: Mapping[str, Any], name: str) -> tuple[str, Any]:
    """NAME as read at start, from NAME_FILE when one is set ("" while it is not there yet)."""
    value, path = values[name], values.get(f"{name}_FILE")
    check_secret_file(path, f"{name}_FILE")
    if not path:
        return value, path
    try:
        return read_secret_file(path, f"{name}_FILE"), path
    except SecretUnavailable:
        return "", path  # not there yet (rotation): each use reads it again


def _decision_key(values: Mapping[str, Any]) -> str:
    """The decision key as read at start: required, 16+ characters, with an election."""
    if election_settings(values) is None:
        return ""
    key, key_file = _secret_at_start(values, "DECISION_KEY")
    if key_file and not key:
        return ""  # not there yet (rotation): each use reads it again
    if len(key) < MIN_DECISION_KEY:  # a short key could be found from one sealed decision
        raise ConfigError("DECISION_KEY_FILE (or DECISION_KEY, 16+ characters) is required with "
                          "LEADER_ELECTION=auto in a cluster: it seals the leader's decision "
                          "(or set LEADER_ELECTION=off)")
    if key:
        logs.redact(key)
    return key


def _kube_settings(values: Mapping[str, Any]) -> dict[str, Any] | None:
    """Where the Kubernetes API is and which pod we are, when running in a cluster."""
    if not values["KUBERNETES_SERVICE_HOST"]:
        return None
    return {"pod_name": values["POD_NAME"], "namespace": values["POD_NAMESPACE"],
            "pod_uid": values["POD_UID"], "service_host": values["KUBERNETES_SERVICE_HOST"],
            "service_port": values["KUBERNETES_SERVICE_PORT"]}


def election_settings(values: Mapping[str, Any]) -> ElectionSettings | None:
    """The Lease to elect a leader on: None outside a cluster or with LEADER_ELECTION=off."""
    if values["LEADER_ELECTION"] == "off" or not values["KUBERNETES_SERVICE_HOST"]:
        return None
    require(values, "POD_NAME", "POD_NAMESPACE")
    duration, deadline, retry = (values["LEADER_ELECTION_LEASE_DURATION"],
                                 values["LEADER_ELECTION_RENEW_DEADLINE"],
                                 values["LEADER_ELECTION_RETRY_PERIOD"])
    # client-go's rules (1.2 is its JitterFactor); the Lease holds the duration in whole
    # seconds, written rounded up, so the written duration exceeds the deadline too
    if not (deadline > 1.2 * retry and duration > deadline):
        raise ConfigError("LEADER_ELECTION_RENEW_DEADLINE > 1.2 x LEADER_ELECTION_RETRY_PERIOD "
                          "and LEADER_ELECTION_LEASE_DURATION > LEADER_ELECTION_RENEW_DEADLINE "
                          f"are required (client-go's rules), got retry {retry}, deadline "
                          f"{deadline}, duration {duration}")
    lease = values["LEADER_ELECTION_LEASE"] or deployment_of(values["POD_NAME"])
    if not _LEASE_NAME.match(lease):
        raise ConfigError(f"LEADER_ELECTION_LEASE {lease[:80]!r} is not a Kubernetes object name")
    return ElectionSettings(values["POD_NAMESPACE"], lease, values["POD_NAME"], duration,
                            deadline, retry)


_LEASE_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
_DEPLOYMENT_POD = re.compile(r"^(?P<deployment>[a-z0-9][-a-z0-9.]*)-[a-z0-9]{5,10}-[a-z0-9]{5}$")


def deployment_of(pod_name: str) -> str:
    """The Deployment a pod belongs to, from its name (<deployment>-<hash>-<suffix>).

    A pod that is not named so (a bare pod, a StatefulSet's) gets a Lease of its own: it then
    leads alone, which is a standalone sidecar, never a wrong leader shared by strangers.
    """
    found = _DEPLOYMENT_POD.match(pod_name)
    return found["deployment"] if found else pod_name


def _service_url(values: Mapping[str, Any]) -> str:
    host = values["KUBERNETES_SERVICE_HOST"]
    host = f"[{host}]" if ":" in host else host
    return f"https://{host}:{values['KUBERNETES_SERVICE_PORT']}" if host else ""


def _peer_url(values: Mapping[str, Any]) -> str:
    """Where peers reach this sidecar's files: needed, and checked, only with an election."""
    if election_settings(values) is None:
        return ""
    require(values, "POD_IP")
    host, port = values["POD_IP"], values["SIDECAR_LISTEN"][1]
    if not port:
        raise ConfigError("SIDECAR_LISTEN (or --sidecar-listen) has port 0, but with "
                          "LEADER_ELECTION peers fetch snapshot files from it")
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
