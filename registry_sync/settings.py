"""The sidecar's settings, each declared once: variable, flag twin, parser, default, meaning.

The rows drive the flags, the reading (flag before variable before default), the help and the
masking of secrets (common/settings.py is the engine); env.example and docs/monitoring.md's guard
table list the same rows (tests/unit/test_settings_docs.py checks them). config.py builds the
typed configuration from what they read.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from common.settings import (
    Setting,
    SettingsTable,
    choice,
    flag,
    fraction,
    http_url,
    listen,
    name_list,
    non_negative_float,
    non_negative_int,
    positive_float,
    positive_int,
    url_root,
)
from model_contract import logs, secret_file

from .errors import ConfigError

SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
DEFAULT_MIN_DOWNLOAD_RATE = 128 * 1024  # bytes/s

SETTINGS = SettingsTable([
    Setting("COMET_API_KEY", secret_file.checked, None,
            "Comet API key (or use COMET_API_KEY_FILE)", True),
    Setting("COMET_API_KEY_FILE", Path, None,
            "file holding the API key; re-read on each use (rotation without restart)"),
    Setting("COMET_WORKSPACE", str, None, "Comet workspace holding the registry models"),
    Setting("COMET_URL_OVERRIDE", url_root, None,
            "Comet server; only scheme://host:port is used, as by the comet_ml SDK "
            "(unset: the key's baseUrl, else https://www.comet.com)"),
    Setting("COMET_TIMEOUT", positive_float, "10",
            "seconds a registry API call may take, whole answer included"),
    Setting("COMET_DOWNLOAD_TIMEOUT", positive_float, "60",
            "seconds a download may stall; added to the size-based deadline"),
    Setting("COMET_MIN_DOWNLOAD_RATE", positive_int, str(DEFAULT_MIN_DOWNLOAD_RATE),
            "bytes/s a download must average, against the size the registry announced"),
    Setting("COMET_ALLOW_HEADER_NAME", str, None,
            "a header an on-premises gateway requires on every Comet request (the SDK's)"),
    Setting("COMET_ALLOW_HEADER_VALUE", str, None,
            "the value of COMET_ALLOW_HEADER_NAME", True),
    Setting("COMET_INCLUDE_CUSTOM_CA_BUNDLE", Path, None,
            "PEM file or folder of CA certificates trusted besides the public roots (the "
            "SDK's)"),
    Setting("AWS_ENDPOINT_URL", url_root, "",
            "S3 endpoint of s3:// remote assets, as boto3 reads it (empty: AWS S3)"),
    Setting("AWS_REGION", str, "", "region of s3:// remote assets' buckets, as boto3 reads "
            "it (empty: asked of the bucket)"),
    Setting("MODEL_ROOT", Path, None, "shared directory holding snapshots/ and current"),
    Setting("REGISTRY_MODELS", name_list, None, "comma-separated registry model names"),
    Setting("REGISTRY_STATUS", str, "Production", "status that marks the version to serve"),
    Setting("REGISTRY_TAG", str, "",
            "if set, the newest version with this tag / legacy stage when none has the status"),
    Setting("REGISTRY_CANDIDATE_STATUS", str, "Staging",
            "status of the challenger, linked as MODEL_ROOT/candidate (empty: no challenger)",
            empty_means_off=True),
    Setting("SYNC_GROUPING", choice("experiment", "independent"), "experiment",
            "experiment: publish only when all models' versions come from one experiment"),
    Setting("SYNC_INTERVAL", positive_float, "10", "seconds between polls (with ±10% jitter)"),
    Setting("SYNC_MAX_BACKOFF", positive_float, "300", "cap in seconds of the error backoff"),
    Setting("INIT_MAX_FAILURES", non_negative_int, "5",
            "failed syncs before the first good snapshot that stop the daemon (0: never)"),
    Setting("KEEP_SNAPSHOTS", positive_int, "3", "snapshots kept on disk, current included"),
    Setting("MAX_MODEL_BYTES", positive_int, str(4 * 1024**3),
            "cap on one model's uncompressed size in bytes"),
    Setting("MAX_ZIP_ENTRIES", positive_int, "10000", "cap on the number of files in one zip"),
    Setting("MAX_COMPRESSION_RATIO", positive_float, "200",
            "cap on a zip entry's uncompressed/compressed size ratio"),
    Setting("SERVING_URL", http_url, "",
            "serving's base URL for validate/reload (empty: publish without validation)"),
    Setting("RELOAD_TOKEN", secret_file.checked, "",
            "shared token for serving's /-/validate and /-/reload", True),
    Setting("RELOAD_TOKEN_FILE", Path, None,
            "file holding the reload token; re-read on each use (rotation without restart)"),
    Setting("VALIDATION_DEADLINE", positive_float, "300",
            "seconds the sidecar waits for serving's verdict on a snapshot (must exceed "
            "serving's VALIDATION_TIMEOUT)"),
    Setting("SIDECAR_LISTEN", listen, "127.0.0.1:8090",
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
    Setting("LEADER_ELECTION", choice("auto", "off"), "auto",
            "auto: in a cluster one sidecar polls Comet and the others follow; off: all poll"),
    Setting("LEADER_ELECTION_LEASE", str, "",
            "name of the coordination.k8s.io Lease the sidecars elect a leader on (empty: "
            "the Deployment's name, from POD_NAME)"),
    Setting("LEADER_ELECTION_LEASE_DURATION", positive_float, "15",
            "seconds a leader's Lease lasts without renewal before another may take it"),
    Setting("LEADER_ELECTION_RENEW_DEADLINE", positive_float, "10",
            "seconds a leader keeps trying to renew before it stops acting as leader"),
    Setting("LEADER_ELECTION_RETRY_PERIOD", positive_float, "2",
            "seconds between attempts to acquire or renew the Lease"),
    Setting("DECISION_KEY", secret_file.checked, "",
            "key (16+ characters) sealing the leader's decision; only this Deployment's "
            "pods may hold it (or use DECISION_KEY_FILE)", True),
    Setting("DECISION_KEY_FILE", Path, None,
            "file holding DECISION_KEY; re-read on each use (rotation without restart)"),
    Setting("LEADER_STEP_DOWN_AFTER", positive_float, "300",
            "seconds of failed passes after which a leader hands the Lease over"),
    Setting("POLL_NOW_MIN_INTERVAL", non_negative_float, "5",
            "seconds between passes woken by /-/poll-now (wake-ups in between are merged)"),
    Setting("GUARD_ENABLED", flag, "false",
            "watch each newly published champion and roll it back when it hurts traffic"),
    Setting("GUARD_WINDOW", positive_float, "60",
            "seconds a new champion is watched after its publication"),
    Setting("GUARD_SAMPLE_INTERVAL", positive_float, "1",
            "seconds between two readings of serving's /metrics by the guard"),
    Setting("GUARD_MIN_REQUESTS", positive_int, "100",
            "requests a champion must answer in the window before it is judged"),
    Setting("GUARD_MAX_ERROR_RATE", fraction, "0.05",
            "share of requests the new champion may fail beyond the previous one's"),
    Setting("GUARD_MAX_LATENCY_RATIO", positive_float, "3",
            "most the new champion's p95 model time may be, as a multiple of the previous"),
    Setting("GUARD_MIN_LATENCY_MS", non_negative_float, "2",
            "the p95 must also grow by more than these milliseconds to trip"),
    Setting("GUARD_MAX_SHARE_SHIFT", fraction, "0.25",
            "most the class shares of the answers may move (total variation, 0 to 1)"),
    Setting("GUARD_MAX_MEAN_SHIFT", positive_float, "1",
            "most a regressor's mean value may move, in the previous version's spreads"),
    Setting("GUARD_MAX_SPREAD_RATIO", positive_float, "3",
            "most a regressor's spread of values may grow or shrink, as a multiple"),
    Setting("GUARD_COMET_TAG", str, "", "tag put on a rolled-back version in the registry, "
            "with the reason in its metadata (needs a key that may write); empty: the "
            "registry is not told"),
    Setting("PROMETHEUS_URL", http_url, "", "Prometheus scraping every pod's serving: the guard "
            "judges the Deployment's summed figures; empty: this pod's serving /metrics"),
    Setting("KUBERNETES_API_URL", str, "", "the API server for the election; empty: "
            "https://KUBERNETES_SERVICE_HOST:KUBERNETES_SERVICE_PORT"),
    Setting("KUBERNETES_TOKEN_FILE", Path, str(SERVICE_ACCOUNT_DIR / "token"),
            "service-account token for the election (ca.crt beside it is trusted)"),
], error=ConfigError)

add_flags = SETTINGS.add_flags
read = SETTINGS.read
require = SETTINGS.require


def setting(name: str) -> Any:
    """A dataclass field whose default is the row NAME's, parsed: the only default."""
    return SETTINGS.field(name)

COMET_NAMES = ["COMET_API_KEY", "COMET_API_KEY_FILE", "COMET_WORKSPACE", "COMET_URL_OVERRIDE",
               "COMET_TIMEOUT", "COMET_DOWNLOAD_TIMEOUT", "COMET_MIN_DOWNLOAD_RATE",
               "COMET_ALLOW_HEADER_NAME", "COMET_ALLOW_HEADER_VALUE",
               "COMET_INCLUDE_CUSTOM_CA_BUNDLE"]

ELECTION_NAMES = ["LEADER_ELECTION", "LEADER_ELECTION_LEASE", "LEADER_ELECTION_LEASE_DURATION",
                  "LEADER_ELECTION_RENEW_DEADLINE", "LEADER_ELECTION_RETRY_PERIOD",
                  "DECISION_KEY", "DECISION_KEY_FILE", "LEADER_STEP_DOWN_AFTER",
                  "KUBERNETES_API_URL", "KUBERNETES_TOKEN_FILE"]

GUARD_NAMES = ["GUARD_ENABLED", "GUARD_WINDOW", "GUARD_SAMPLE_INTERVAL", "GUARD_MIN_REQUESTS",
               "GUARD_MAX_ERROR_RATE", "GUARD_MAX_LATENCY_RATIO", "GUARD_MIN_LATENCY_MS",
               "GUARD_MAX_SHARE_SHIFT", "GUARD_MAX_MEAN_SHIFT", "GUARD_MAX_SPREAD_RATIO",
               "GUARD_COMET_TAG", "PROMETHEUS_URL"]

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
