"""Configuration: read once, from flags or the environment, into frozen typed objects.

This is the only module of registry-sync that reads os.environ. Every setting has an
environment variable and a flag twin (the flag wins). A missing or malformed setting raises
ConfigError naming the variable and what it expects; the CLI turns that into one line, exit 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from model_contract import api_key, logs, secret_file

from . import onprem
from .election import ElectionSettings
from .errors import ConfigError, SecretUnavailable
from .guard import GuardSettings
from .guard_figures import Thresholds
from .secret_files import check_secret_file, read_secret_file

DEFAULT_COMET_URL = api_key.DEFAULT_SERVER
SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
DEFAULT_MIN_DOWNLOAD_RATE = 128 * 1024  # bytes/s


def _url_root(value: str) -> str:
    """Keep only scheme://host:port of a URL, as the comet_ml SDK does with COMET_URL_OVERRIDE."""
    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError("an http(s) URL such as http://127.0.0.1:8080/clientlib/")
    return f"{parts.scheme}://{parts.netloc}"


def _number(value: str, kind: type, minimum: float, strict: bool, expects: str) -> Any:
    try:
        number = kind(value)
    except ValueError:
        raise ValueError(expects) from None
    if number != number or number in (float("inf"), float("-inf")) or number < minimum or (
            strict and number == minimum):
        raise ValueError(expects)
    return number


def _positive_float(value: str) -> float:
    return _number(value, float, 0, True, "a number > 0")


def _positive_int(value: str) -> int:
    return _number(value, int, 0, True, "a whole number >= 1")


def _non_negative_float(value: str) -> float:
    return _number(value, float, 0, False, "a number >= 0")


def _non_negative_int(value: str) -> int:
    return _number(value, int, 0, False, "a whole number >= 0")


def _fraction(value: str) -> float:
    number = _number(value, float, 0, False, "a number from 0 to 1")
    if number > 1:
        raise ValueError("a number from 0 to 1")
    return number


def _name_list(value: str) -> tuple[str, ...]:
    names = tuple(dict.fromkeys(n.strip() for n in value.split(",") if n.strip()))
    if not names:
        raise ValueError("a comma-separated list of registry model names")
    return names


def _listen(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ValueError("HOST:PORT, e.g. 127.0.0.1:8090 (port 0 disables it)")
    return host or "127.0.0.1", int(port)


def _choice(*options: str) -> Callable[[str], str]:
    def parse(value: str) -> str:
        if value not in options:
            raise ValueError("one of " + ", ".join(options))
        return value

    return parse


@dataclass(frozen=True)
class Setting:
    """One setting: its variable, its flag, how to parse it, its default and its meaning."""

    env: str
    parse: Callable[[str], Any]
    default: str | None
    help: str
    secret: bool = False
    empty_means_off: bool = False  # an empty value is kept (turns the feature off), not defaulted

    @property
    def flag(self) -> str:
        """The CLI twin of the variable, e.g. --sync-interval for SYNC_INTERVAL."""
        return "--" + self.env.lower().replace("_", "-")

    @property
    def dest(self) -> str:
        """The attribute the flag is parsed into."""
        return self.env.lower()


SETTINGS: dict[str, Setting] = {
    s.env: s
    for s in [
        Setting("COMET_API_KEY", secret_file.checked, None,
                "Comet API key (or use COMET_API_KEY_FILE)", True),
        Setting("COMET_API_KEY_FILE", Path, None,
                "file holding the API key; re-read on each use (rotation without restart)"),
        Setting("COMET_WORKSPACE", str, None, "Comet workspace holding the registry models"),
        Setting("COMET_URL_OVERRIDE", _url_root, None,
                "Comet server; only scheme://host:port is used, as by the comet_ml SDK "
                "(unset: the key's baseUrl, else https://www.comet.com)"),
        Setting("COMET_TIMEOUT", _positive_float, "10",
                "seconds a registry API call may take, whole answer included"),
        Setting("COMET_DOWNLOAD_TIMEOUT", _positive_float, "60",
                "seconds a download may stall; added to the size-based deadline"),
        Setting("COMET_MIN_DOWNLOAD_RATE", _positive_int, str(DEFAULT_MIN_DOWNLOAD_RATE),
                "bytes/s a download must average, against the size the registry announced"),
        Setting("COMET_ALLOW_HEADER_NAME", str, None,
                "a header an on-premises gateway requires on every Comet request (the SDK's)"),
        Setting("COMET_ALLOW_HEADER_VALUE", str, None,
                "the value of COMET_ALLOW_HEADER_NAME", True),
        Setting("COMET_INCLUDE_CUSTOM_CA_BUNDLE", Path, None,
                "PEM file or folder of CA certificates trusted besides the public roots (the "
                "SDK's)"),
        Setting("AWS_ENDPOINT_URL", _url_root, "",
                "S3 endpoint of s3:// remote assets, as boto3 reads it (empty: AWS S3)"),
        Setting("AWS_REGION", str, "", "region of s3:// remote assets' buckets, as boto3 reads "
                "it (empty: asked of the bucket)"),
        Setting("MODEL_ROOT", Path, None, "shared directory holding snapshots/ and current"),
        Setting("REGISTRY_MODELS", _name_list, None, "comma-separated registry model names"),
        Setting("REGISTRY_STATUS", str, "Production", "status that marks the version to serve"),
        Setting("REGISTRY_TAG", str, "",
                "if set, the newest version with this tag / legacy stage when none has the status"),
        Setting("REGISTRY_CANDIDATE_STATUS", str, "Staging",
                "status of the challenger, linked as MODEL_ROOT/candidate (empty: no challenger)",
                empty_means_off=True),
        Setting("SYNC_GROUPING", _choice("experiment", "independent"), "experiment",
                "experiment: publish only when all models' versions come from one experiment"),
        Setting("SYNC_INTERVAL", _positive_float, "10", "seconds between polls (with ±10% jitter)"),
        Setting("SYNC_MAX_BACKOFF", _positive_float, "300", "cap in seconds of the error backoff"),
        Setting("INIT_MAX_FAILURES", _non_negative_int, "5",
                "failed syncs before the first good snapshot that stop the daemon (0: never)"),
        Setting("KEEP_SNAPSHOTS", _positive_int, "3", "snapshots kept on disk, current included"),
        Setting("MAX_MODEL_BYTES", _positive_int, str(4 * 1024**3),
                "cap on one model's uncompressed size in bytes"),
        Setting("MAX_ZIP_ENTRIES", _positive_int, "10000", "cap on the number of files in one zip"),
        Setting("MAX_COMPRESSION_RATIO", _positive_float, "200",
                "cap on a zip entry's uncompressed/compressed size ratio"),
        Setting("SERVING_URL", str, "",
                "serving's base URL for validate/reload (empty: publish without validation)"),
        Setting("RELOAD_TOKEN", secret_file.checked, "",
                "shared token for serving's /-/validate and /-/reload", True),
        Setting("RELOAD_TOKEN_FILE", Path, None,
                "file holding the reload token; re-read on each use (rotation without restart)"),
        Setting("VALIDATION_DEADLINE", _positive_float, "300",
                "seconds the sidecar waits for serving's verdict on a snapshot (must exceed "
                "serving's VALIDATION_TIMEOUT)"),
        Setting("SIDECAR_LISTEN", _listen, "127.0.0.1:8090",
                "address of the sidecar's /healthz /readyz /metrics /status (port 0: off)"),
        Setting("LOG_LEVEL", logs.parse_level, "info", "debug, info, warning or error"),
        Setting("POD_NAME", str, "", "this pod's name (Downward API), for Events and annotations"),
        Setting("POD_NAMESPACE", str, "", "this pod's namespace (Downward API)"),
        Setting("POD_UID", str, "", "this pod's uid (Downward API; looked up when unset)"),
        Setting("KUBERNETES_SERVICE_HOST", str, "",
                "set by Kubernetes in every pod; Events and annotations are off without it"),
        Setting("KUBERNETES_SERVICE_PORT", str, "443", "set by Kubernetes in every pod"),
        Setting("POD_IP", str, "", "this pod's IP (Downward API status.podIP): peers fetch "
                                   "snapshot files from it"),
        Setting("LEADER_ELECTION", _choice("auto", "off"), "auto",
                "auto: in a cluster one sidecar polls Comet and the others follow; off: all poll"),
        Setting("LEADER_ELECTION_LEASE", str, "",
                "name of the coordination.k8s.io Lease the sidecars elect a leader on (empty: "
                "the Deployment's name, from POD_NAME)"),
        Setting("LEADER_ELECTION_LEASE_DURATION", _positive_float, "15",
                "seconds a leader's Lease lasts without renewal before another may take it"),
        Setting("LEADER_ELECTION_RENEW_DEADLINE", _positive_float, "10",
                "seconds a leader keeps trying to renew before it stops acting as leader"),
        Setting("LEADER_ELECTION_RETRY_PERIOD", _positive_float, "2",
                "seconds between attempts to acquire or renew the Lease"),
        Setting("DECISION_KEY", secret_file.checked, "",
                "key (16+ characters) sealing the leader's decision; only this Deployment's "
                "pods may hold it (or use DECISION_KEY_FILE)", True),
        Setting("DECISION_KEY_FILE", Path, None,
                "file holding DECISION_KEY; re-read on each use (rotation without restart)"),
        Setting("LEADER_STEP_DOWN_AFTER", _positive_float, "300",
                "seconds of failed passes after which a leader hands the Lease over"),
        Setting("POLL_NOW_MIN_INTERVAL", _non_negative_float, "5",
                "seconds between passes woken by /-/poll-now (wake-ups in between are merged)"),
        Setting("GUARD_ENABLED", _choice("true", "false"), "false",
                "watch each newly published champion and roll it back when it hurts traffic"),
        Setting("GUARD_WINDOW", _positive_float, "60",
                "seconds a new champion is watched after its publication"),
        Setting("GUARD_SAMPLE_INTERVAL", _positive_float, "1",
                "seconds between two readings of serving's /metrics by the guard"),
        Setting("GUARD_MIN_REQUESTS", _positive_int, "100",
                "requests a champion must answer in the window before it is judged"),
        Setting("GUARD_MAX_ERROR_RATE", _fraction, "0.05",
                "share of requests the new champion may fail beyond the previous one's"),
        Setting("GUARD_MAX_LATENCY_RATIO", _positive_float, "3",
                "most the new champion's p95 model time may be, as a multiple of the previous"),
        Setting("GUARD_MIN_LATENCY_MS", _non_negative_float, "2",
                "the p95 must also grow by more than these milliseconds to trip"),
        Setting("GUARD_MAX_SHARE_SHIFT", _fraction, "0.25",
                "most the class shares of the answers may move (total variation, 0 to 1)"),
        Setting("GUARD_COMET_TAG", str, "", "tag put on a rolled-back version in the registry, "
                "with the reason in its metadata (needs a key that may write); empty: the "
                "registry is not told"),
        Setting("PROMETHEUS_URL", str, "", "Prometheus scraping every pod's serving: the guard "
                "judges the Deployment's summed figures; empty: this pod's serving /metrics"),
        Setting("KUBERNETES_API_URL", str, "", "the API server for the election; empty: "
                "https://KUBERNETES_SERVICE_HOST:KUBERNETES_SERVICE_PORT"),
        Setting("KUBERNETES_TOKEN_FILE", Path, str(SERVICE_ACCOUNT_DIR / "token"),
                "service-account token for the election (ca.crt beside it is trusted)"),
    ]
}


def add_flags(parser: argparse.ArgumentParser, names: list[str]) -> None:
    """Give a parser the flag twins of the named settings."""
    for name in names:
        setting = SETTINGS[name]
        text = f"{setting.help} [env {name}" + (f", default {setting.default}]"
                                                 if setting.default is not None else "]")
        # argparse formats help with %: a literal one ("±10% jitter") must be doubled
        parser.add_argument(setting.flag, dest=setting.dest, metavar=name, default=None,
                            help=text.replace("%", "%%"))


def read(args: argparse.Namespace, environ: Mapping[str, str], names: list[str]) -> dict[str, Any]:
    """Parse the named settings, flag before variable before default; None where unset."""
    values: dict[str, Any] = {}
    for name in names:
        setting = SETTINGS[name]
        raw = getattr(args, setting.dest, None)
        if raw is None:
            raw = environ.get(name)
        if raw is None or (raw == "" and not setting.empty_means_off):
            raw = setting.default
        if raw is None:
            values[name] = None
            continue
        try:
            values[name] = setting.parse(raw) if raw != "" else raw
        except ValueError as exc:
            shown = "(hidden)" if setting.secret else repr(raw)
            raise ConfigError(f"{name} (or {setting.flag}) is {shown}: expected {exc}") from None
    return values


def require(values: Mapping[str, Any], *names: str) -> None:
    """Raise ConfigError naming the first required setting that is unset."""
    for name in names:
        if values.get(name) in (None, ""):
            setting = SETTINGS[name]
            raise ConfigError(f"{name} (or {setting.flag}) is required: {setting.help}")


@dataclass(frozen=True)
class CometSettings:
    """Where the registry is and how to authenticate to it."""

    url: str
    workspace: str
    api_key: str | None
    api_key_file: Path | None
    timeout: float = 10.0
    download_timeout: float = 60.0
    min_download_rate: int = DEFAULT_MIN_DOWNLOAD_RATE
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


COMET_NAMES = ["COMET_API_KEY", "COMET_API_KEY_FILE", "COMET_WORKSPACE", "COMET_URL_OVERRIDE",
               "COMET_TIMEOUT", "COMET_DOWNLOAD_TIMEOUT", "COMET_MIN_DOWNLOAD_RATE",
               "COMET_ALLOW_HEADER_NAME", "COMET_ALLOW_HEADER_VALUE",
               "COMET_INCLUDE_CUSTOM_CA_BUNDLE"]


def server_url(override: str | None, key: str, key_variable: str) -> str:
    """COMET_URL_OVERRIDE if set, else the server the key names, else Comet's own."""
    try:
        carried = api_key.base_url(key)
    except api_key.MalformedKey as exc:
        raise ConfigError(f"{key_variable} is malformed: expected {exc}") from None
    if override:
        return override
    if carried is None:
        return DEFAULT_COMET_URL
    try:
        return _url_root(carried)
    except ValueError as exc:
        raise ConfigError(f"{key_variable}'s baseUrl is malformed: expected {exc}") from None


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
        min_download_rate=values.get("COMET_MIN_DOWNLOAD_RATE") or DEFAULT_MIN_DOWNLOAD_RATE,
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


@dataclass(frozen=True)
class ArchiveLimits:
    """Caps that a downloaded zip must stay within."""

    max_bytes: int = 4 * 1024**3
    max_entries: int = 10000
    max_ratio: float = 200.0


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
    kube_token_file: Path = SERVICE_ACCOUNT_DIR / "token"
    reload_token_file: Path | None = None
    validation_deadline: float = 300.0
    candidate_status: str = ""  # the challenger's status; empty: none (the CLI default: Staging)
    decision_key: str = ""  # as read at start; read_decision_key() gives the current one
    decision_key_file: Path | None = None
    step_down_after: float = 300.0
    poll_now_min_interval: float = 5.0
    guard: GuardSettings = field(default_factory=GuardSettings)

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


ELECTION_NAMES = ["LEADER_ELECTION", "LEADER_ELECTION_LEASE", "LEADER_ELECTION_LEASE_DURATION",
                  "LEADER_ELECTION_RENEW_DEADLINE", "LEADER_ELECTION_RETRY_PERIOD",
                  "DECISION_KEY", "DECISION_KEY_FILE", "LEADER_STEP_DOWN_AFTER",
                  "KUBERNETES_API_URL", "KUBERNETES_TOKEN_FILE"]

GUARD_NAMES = ["GUARD_ENABLED", "GUARD_WINDOW", "GUARD_SAMPLE_INTERVAL", "GUARD_MIN_REQUESTS",
               "GUARD_MAX_ERROR_RATE", "GUARD_MAX_LATENCY_RATIO", "GUARD_MIN_LATENCY_MS",
               "GUARD_MAX_SHARE_SHIFT", "GUARD_COMET_TAG", "PROMETHEUS_URL"]

SYNC_NAMES = [
    *COMET_NAMES,
    "MODEL_ROOT", "REGISTRY_MODELS", "REGISTRY_STATUS", "REGISTRY_TAG",
    "REGISTRY_CANDIDATE_STATUS", "SYNC_GROUPING",
    "SYNC_INTERVAL", "SYNC_MAX_BACKOFF", "INIT_MAX_FAILURES", "KEEP_SNAPSHOTS", "MAX_MODEL_BYTES",
    "MAX_ZIP_ENTRIES", "MAX_COMPRESSION_RATIO", "AWS_ENDPOINT_URL", "AWS_REGION",
    "SERVING_URL", "RELOAD_TOKEN", "RELOAD_TOKEN_FILE", "VALIDATION_DEADLINE",
    "POLL_NOW_MIN_INTERVAL", *GUARD_NAMES, "SIDECAR_LISTEN", "LOG_LEVEL", "POD_NAME",
    "POD_NAMESPACE", "POD_UID", "KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT", "POD_IP",
    *ELECTION_NAMES,
]


def sync_config(args: argparse.Namespace, environ: Mapping[str, str] | None = None) -> SyncConfig:
    """Read and validate the daemon's configuration."""
    values = read(args, os.environ if environ is None else environ, SYNC_NAMES)
    require(values, "MODEL_ROOT", "REGISTRY_MODELS")
    token, token_file = _secret_at_start(values, "RELOAD_TOKEN")
    serving_url = values["SERVING_URL"].rstrip("/")
    if serving_url:
        try:
            _url_root(serving_url)
        except ValueError as exc:
            raise ConfigError(
                f"SERVING_URL (or --serving-url) is {serving_url!r}: expected {exc}") from None
        if not token and not token_file:
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
        candidate_status=values["REGISTRY_CANDIDATE_STATUS"].strip(),
        decision_key=_decision_key(values),
        decision_key_file=values.get("DECISION_KEY_FILE"),
        step_down_after=values["LEADER_STEP_DOWN_AFTER"],
        poll_now_min_interval=values["POLL_NOW_MIN_INTERVAL"],
        guard=guard_settings(values),
    )


def guard_settings(values: Mapping[str, Any]) -> GuardSettings:
    """The promotion guard's settings (registry_sync.guard)."""
    return GuardSettings(
        enabled=values["GUARD_ENABLED"] == "true", window=values["GUARD_WINDOW"],
        sample_interval=values["GUARD_SAMPLE_INTERVAL"],
        thresholds=Thresholds(values["GUARD_MIN_REQUESTS"], values["GUARD_MAX_ERROR_RATE"],
                              values["GUARD_MAX_LATENCY_RATIO"], values["GUARD_MIN_LATENCY_MS"],
                              values["GUARD_MAX_SHARE_SHIFT"]),
        comet_tag=values["GUARD_COMET_TAG"].strip(),
        prometheus_url=_optional_url(values, "PROMETHEUS_URL"))


def _optional_url(values: Mapping[str, Any], name: str) -> str:
    """An http(s) URL (without its trailing slash), or '' when unset."""
    url = values[name].strip().rstrip("/")
    if url:
        try:
            _url_root(url)
        except ValueError as exc:
            raise ConfigError(f"{name} (or {SETTINGS[name].flag}) is {url[:80]!r}: "
                              f"expected {exc}") from None
    return url


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
