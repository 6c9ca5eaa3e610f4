"""Configuration of serving: read once from the environment into frozen objects.

This is the only module of serving that reads its settings from os.environ. Each setting is
declared once, as a row of SETTINGS (common/settings.py is the engine the sidecar uses too), and
each dataclass field says which row it is read from (`setting("MAX_BATCH")`), so the row's
default is the field's default: there is no second one. A missing or malformed setting raises
ConfigError naming the variable and what it expects; secrets are never shown.
"""

from __future__ import annotations

import dataclasses
import enum
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common.settings import (
    Setting,
    SettingsTable,
    flag,
    fraction,
    http_url,
    positive_float,
    positive_int,
    url_root,
)
from model_contract import logs, secret_file

from .errors import ConfigError

MIB = 1024 * 1024
MIN_HEADER_BYTES = 8192  # the smallest read buffer granian's HTTP/1 parser (hyper) accepts


def _percent(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise ValueError("a percentage between 0 and 100") from None
    if not 0 <= number <= 100:
        raise ValueError("a percentage between 0 and 100")
    return number


def _header_name(value: str) -> str:
    # Stricter than an HTTP token: the front drops names with `_` (rsgi.py), so only letters,
    # digits and dashes can reach the app.
    if not value.replace("-", "").isalnum() or not value.isascii() or len(value) > 64:
        raise ValueError("an HTTP header name (letters, digits, dashes)")
    return value


def _whole(value: str, expects: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise ValueError(expects) from None


def _port(value: str) -> int:
    number = _whole(value, "a TCP port between 1 and 65535")
    if not 0 < number < 65536:
        raise ValueError("a TCP port between 1 and 65535")
    return number


def _mebibytes(value: str) -> int:
    expects = "a whole number of MiB >= 0 (0: no limit)"
    number = _whole(value, expects)
    if number < 0:
        raise ValueError(expects)
    return number * MIB


def _header_bytes(value: str) -> int:
    expects = f"a whole number of bytes >= {MIN_HEADER_BYTES} (HTTP's smallest header buffer)"
    if _whole(value, expects) < MIN_HEADER_BYTES:
        raise ValueError(expects)
    return int(value)


class PinWorkers(enum.Enum):
    """FRONT_PIN_WORKERS: when each worker gets a CPU of its own (serving.front.affinity)."""

    AUTO = "auto"  # when the CPUs this process may use number exactly WEB_CONCURRENCY
    ON = "true"  # whenever there are at least as many CPUs as workers
    OFF = "false"


def _pin_workers(value: str) -> PinWorkers:
    try:
        return PinWorkers(value.lower())
    except ValueError:
        raise ValueError("auto, true or false") from None


def _bind(value: str) -> str:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise ValueError("HOST:PORT, e.g. 127.0.0.1:8080")
    return value


WORKER_TIMEOUT = 30.0  # seconds one request may run in the front before its worker is replaced
# Seconds a model call may outlive PREDICT_TIMEOUT (the alarm could not stop it: a C call holding
# the GIL) before the master kills its worker.
HARD_DEADLINE_GRACE = 1.0

# docs/serving.md, docs/monitoring.md and docs/challenger.md list the same rows, and env.example
# (tests/unit/test_settings_docs.py checks them against these).
SETTINGS = SettingsTable([
    Setting("MODEL_ROOT", Path, None,
            "shared directory holding snapshots/ and the current symlink"),
    Setting("RELOAD_TOKEN", secret_file.checked, None,
            "shared token for /-/validate and /-/reload", secret=True),
    Setting("RELOAD_TOKEN_FILE", Path, None,
            "file holding the reload token (instead of RELOAD_TOKEN)"),
    Setting("ADMIN_PORT", _port, None,
            "if set, /-/ endpoints and /metrics answer only on this port (127.0.0.1)"),
    Setting("METRICS_PORT", _port, None,
            "if set (with ADMIN_PORT), GET /metrics also answers on this port of BIND's address, "
            "for Prometheus; nothing else does"),
    Setting("MAX_BATCH", positive_int, "1000", "most instances in one batch request"),
    Setting("MAX_BODY_BYTES", positive_int, str(2 * MIB),
            "largest accepted request body in bytes"),
    Setting("MODEL_CHECK_INTERVAL", positive_float, "0.2", "seconds between checks of `current`"),
    Setting("GOLDEN_MIN_ACCURACY", fraction, "0.7",
            "accuracy a seed-layout snapshot must reach on the bundled sample"),
    Setting("VALIDATION_TIMEOUT", positive_float, "120",
            "seconds the validator process may take to load and check a snapshot"),
    Setting("VALIDATION_MEMORY_LIMIT", _mebibytes, "768",
            "address space of the validator process in MiB (0: no limit)"),
    Setting("VALIDATION_WAIT", positive_float, "1",
            "seconds /-/validate (or a worker's start) waits for a verdict before answering 202 "
            "(running)"),
    Setting("PREDICT_TIMEOUT", positive_float, "0.5",
            "seconds one model call (champion or canary) may run; then 504, and the worker is "
            "replaced if the call cannot be stopped"),
    Setting("VALIDATION_DIR", Path, None,
            "serving's private folder of validation verdicts, shared by its workers (default: a "
            "temporary folder)"),
    Setting("LOG_LEVEL", logs.parse_level, "info", "debug, info, warning or error"),
    Setting("PROMETHEUS_MULTIPROC_DIR", Path, None, "metrics folder shared by the workers"),
    Setting("BIND", _bind, "127.0.0.1:8080", "public address"),
    Setting("WEB_CONCURRENCY", positive_int, "2", "worker processes"),
    Setting("FRONT_HEADER_TIMEOUT", positive_int, "10",
            "seconds a client has to send a request's whole header, and an idle keep-alive "
            "connection stays open"),
    Setting("FRONT_BODY_TIMEOUT", positive_int, "10",
            "seconds a request's whole body has to arrive"),
    Setting("FRONT_MAX_CONNECTIONS", positive_int, "1024",
            "most connections the pod holds at once (split over its workers)"),
    Setting("FRONT_DRAIN_SECONDS", positive_int, "20",
            "on SIGTERM, seconds to finish requests in flight before exiting"),
    Setting("FRONT_BODY_MEMORY", _mebibytes, "64",
            "MiB of request bodies one worker receives at once; past it, 503"),
    Setting("FRONT_SEND_TIMEOUT", positive_int, "10",
            "seconds an answer may wait unread (or unacknowledged) by its client; then the "
            "connection is closed"),
    Setting("FRONT_MAX_HEADER_BYTES", _header_bytes, "16384",
            "largest request head (request line and headers) in bytes; larger: 431"),
    Setting("FRONT_WORKER_MAX_RSS", _mebibytes, "0",
            "MiB of resident memory past which a worker is replaced gracefully (0: never)"),
    Setting("FRONT_BALANCE", flag, "true",
            "a worker holding 2 more busy kept-alive connections than another closes one after "
            "its answer, so clients reconnect evenly"),
    Setting("FRONT_PIN_WORKERS", _pin_workers, "auto",
            "run each worker on a CPU of its own: auto (when the CPUs serving may use number "
            "exactly WEB_CONCURRENCY), true or false"),
    # Comet MPM (docs/monitoring.md). The comet_mpm SDK reads COMET_URL_OVERRIDE itself too.
    Setting("MPM_ENABLED", flag, "false",
            "send prediction events to Comet Model Production Monitoring"),
    Setting("MPM_SAMPLE_RATE", fraction, "1", "share of prediction requests sent to MPM (0 to 1)"),
    Setting("MPM_QUEUE_SIZE", positive_int, "1000",
            "MPM events a worker buffers before dropping (and counting) new ones"),
    Setting("MPM_BATCH_SECONDS", positive_int, None,
            "most seconds an MPM event waits to be sent (unset: the SDK's "
            "COMET_MPM_MAX_BATCH_TIME, default 60)"),
    Setting("MPM_BATCH_SIZE", positive_int, None,
            "most MPM events in one upload (unset: the SDK's COMET_MPM_MAX_BATCH_SIZE, default "
            "1000)"),
    Setting("MPM_SEND_TIMEOUT", positive_int, "10", "seconds an MPM upload or ping may take"),
    Setting("LABELS_PER_SECOND", positive_int, "20",
            "labels a worker accepts per second; past it, 429"),
    Setting("LABELS_QUEUE_SIZE", positive_int, "200",
            "labels a worker buffers for MPM (apart from prediction events); past it, 503"),
    Setting("LABELS_MAX_AGE", positive_float, "604800",
            "seconds after a prediction its label is still accepted"),
    Setting("COMET_API_KEY", secret_file.checked, None,
            "Comet API key, for MPM and the verdict (or use COMET_API_KEY_FILE)", secret=True),
    Setting("COMET_API_KEY_FILE", Path, None, "file holding the Comet API key, read at start"),
    Setting("COMET_WORKSPACE", str, None, "MPM workspace when the snapshot's manifest names none"),
    Setting("COMET_URL_OVERRIDE", url_root, None,
            "Comet server; only scheme://host:port is used, as by the comet_ml SDK (unset: the "
            "key's baseUrl, else https://www.comet.com); MPM is at its /mpm/"),
    Setting("WEBHOOK_SECRET", secret_file.checked, None,
            "secret Comet's webhook sends; unset: the webhook is off", secret=True),
    Setting("WEBHOOK_HEADER", str, "Authorization", "header that carries the webhook secret"),
    Setting("WEBHOOK_PER_MINUTE", positive_int, "6",
            "webhook calls accepted per minute per worker"),
    Setting("SIDECAR_URL", http_url, "http://127.0.0.1:8090",
            "the local sidecar a webhook call wakes"),
    # Champion and challenger (docs/challenger.md): MODEL_ROOT/candidate, when present.
    Setting("CHALLENGER_ENABLED", flag, "true", "load MODEL_ROOT/candidate beside the champion"),
    Setting("CANARY_PERCENT", _percent, "0",
            "share of requests the challenger answers (0: shadow)"),
    Setting("CANARY_KEY_HEADER", _header_name, None,
            "request header whose value keeps a client on one role (else the client address)"),
    Setting("SHADOW_QUEUE_SIZE", positive_int, "1000",
            "inputs a worker holds for the challenger before dropping new ones"),
    Setting("SHADOW_PROCESS", flag, "true",
            "score the challenger's shadow calls in a process of its own, each bounded by "
            "PREDICT_TIMEOUT (false: a thread of the worker, sharing its GIL)"),
    Setting("CHALLENGER_WINDOW", positive_int, "1000",
            "latest comparisons in the rolling figures"),
    Setting("GUARD_WINDOW", positive_int, "100", "latest canary answers the guard judges"),
    Setting("GUARD_MIN_ANSWERS", positive_int, "20",
            "canary answers the guard needs before judging"),
    Setting("GUARD_MAX_ERROR_RATE", fraction, "0.05",
            "challenger error rate that ends the canary"),
    Setting("GUARD_MAX_LATENCY_MS", positive_float, "250",
            "challenger p95 latency in ms that ends the canary"),
    Setting("VERDICT_ENABLED", flag, "false",
            "log the comparison as metrics on the challenger's Comet experiment"),
    Setting("VERDICT_INTERVAL", positive_float, "30",
            "seconds between uploads of the comparison"),
], error=ConfigError, flags=False)

_read_into = SETTINGS.read_into


def setting(name: str, required: bool = False) -> Any:
    """A dataclass field read from the row NAME, its default the row's (SettingsTable.field)."""
    return SETTINGS.field(name, required)


@dataclass(frozen=True)
class MpmConfig:
    """Comet MPM settings: off unless enabled, then an API key is required."""

    enabled: bool = setting("MPM_ENABLED")
    sample_rate: float = setting("MPM_SAMPLE_RATE")
    queue_size: int = setting("MPM_QUEUE_SIZE")
    batch_seconds: int | None = setting("MPM_BATCH_SECONDS")  # None: the SDK's own setting
    batch_size: int | None = setting("MPM_BATCH_SIZE")
    send_timeout: int = setting("MPM_SEND_TIMEOUT")
    api_key: str | None = setting("COMET_API_KEY")  # from it or COMET_API_KEY_FILE, if enabled
    workspace: str | None = setting("COMET_WORKSPACE")
    url: str | None = setting("COMET_URL_OVERRIDE")  # None: the key's server, else Comet's own
    labels_per_second: int = setting("LABELS_PER_SECOND")
    labels_queue_size: int = setting("LABELS_QUEUE_SIZE")
    labels_max_age: float = setting("LABELS_MAX_AGE")


@dataclass(frozen=True)
class ChallengerConfig:
    """The challenger: shadow unless a canary share is set; the guard; the verdict in Comet."""

    enabled: bool = setting("CHALLENGER_ENABLED")
    canary_percent: float = setting("CANARY_PERCENT")
    key_header: str | None = setting("CANARY_KEY_HEADER")
    queue_size: int = setting("SHADOW_QUEUE_SIZE")
    shadow_process: bool = setting("SHADOW_PROCESS")
    window: int = setting("CHALLENGER_WINDOW")
    guard_window: int = setting("GUARD_WINDOW")
    guard_min_answers: int = setting("GUARD_MIN_ANSWERS")
    guard_max_error_rate: float = setting("GUARD_MAX_ERROR_RATE")
    guard_max_latency_ms: float = setting("GUARD_MAX_LATENCY_MS")
    verdict_enabled: bool = setting("VERDICT_ENABLED")
    verdict_interval: float = setting("VERDICT_INTERVAL")
    api_key: str | None = setting("COMET_API_KEY")  # from it or its file, if the verdict is on
    url: str | None = setting("COMET_URL_OVERRIDE")  # None: the key's server, else Comet's own


@dataclass(frozen=True)
class ServingConfig:
    """Everything the Flask application needs, validated."""

    model_root: Path = setting("MODEL_ROOT", required=True)
    reload_token: str | None = setting("RELOAD_TOKEN")  # from it or RELOAD_TOKEN_FILE
    reload_token_file: Path | None = setting("RELOAD_TOKEN_FILE")  # None: the token is inline
    admin_port: int | None = setting("ADMIN_PORT")
    max_batch: int = setting("MAX_BATCH")
    max_body_bytes: int = setting("MAX_BODY_BYTES")
    check_interval: float = setting("MODEL_CHECK_INTERVAL")
    golden_min_accuracy: float = setting("GOLDEN_MIN_ACCURACY")
    validation_timeout: float = setting("VALIDATION_TIMEOUT")
    validation_memory_limit: int = setting("VALIDATION_MEMORY_LIMIT")  # bytes; 0: no limit
    validation_wait: float = setting("VALIDATION_WAIT")
    validation_dir: Path | None = setting("VALIDATION_DIR")
    predict_timeout: float = setting("PREDICT_TIMEOUT")
    log_level: str = setting("LOG_LEVEL")
    metrics_dir: Path | None = setting("PROMETHEUS_MULTIPROC_DIR")
    mpm: MpmConfig = MpmConfig()
    challenger: ChallengerConfig = ChallengerConfig()
    watch: bool = True  # tests turn the background watcher off to drive swaps by hand
    webhook_secret: str | None = setting("WEBHOOK_SECRET")
    webhook_header: str = setting("WEBHOOK_HEADER")
    webhook_per_minute: int = setting("WEBHOOK_PER_MINUTE")
    sidecar_url: str = setting("SIDECAR_URL")
    isolate_validation: bool = True  # tests of other parts validate in-process, faster


@dataclass(frozen=True)
class FrontConfig:
    """What `python -m serving.front` needs: addresses, workers, deadlines and limits."""

    bind: str = setting("BIND")
    admin_port: int | None = setting("ADMIN_PORT")
    metrics_port: int | None = setting("METRICS_PORT")
    workers: int = setting("WEB_CONCURRENCY")
    max_body_bytes: int = setting("MAX_BODY_BYTES")
    header_timeout: int = setting("FRONT_HEADER_TIMEOUT")
    body_timeout: int = setting("FRONT_BODY_TIMEOUT")
    max_connections: int = setting("FRONT_MAX_CONNECTIONS")
    drain_seconds: int = setting("FRONT_DRAIN_SECONDS")
    body_memory: int = setting("FRONT_BODY_MEMORY")  # bytes
    send_timeout: int = setting("FRONT_SEND_TIMEOUT")
    max_header_bytes: int = setting("FRONT_MAX_HEADER_BYTES")
    worker_max_rss: int = setting("FRONT_WORKER_MAX_RSS")  # bytes; 0: no bound
    balance: bool = setting("FRONT_BALANCE")
    pin_workers: PinWorkers = setting("FRONT_PIN_WORKERS")
    validation_wait: float = setting("VALIDATION_WAIT")
    validation_dir: Path | None = setting("VALIDATION_DIR")  # None: prefork makes one
    metrics_dir: Path | None = setting("PROMETHEUS_MULTIPROC_DIR")  # None: prefork makes one
    log_level: str = setting("LOG_LEVEL")
    predict_timeout: float = setting("PREDICT_TIMEOUT")
    model_root: Path | None = setting("MODEL_ROOT")


def _secret(environ: Mapping[str, Any], name: str,
            file_name: str) -> tuple[str | None, Path | None]:
    """A secret given in a variable, or else in the file another variable names; and that file
    (None when the secret is given inline, or not at all)."""
    values = SETTINGS.read(None, environ, (name, file_name))
    token, path = values[name], values[file_name]
    if token or path is None:
        return token or None, None
    try:
        return secret_file.read(path, file_name), path
    except secret_file.SecretFileError as exc:
        raise ConfigError(str(exc)) from None


def from_env(environ: Mapping[str, Any] | None = None) -> ServingConfig:
    """Read the serving settings from the environment (or a mapping of variables)."""
    env = os.environ if environ is None else environ
    token, token_file = _secret(env, "RELOAD_TOKEN", "RELOAD_TOKEN_FILE")
    return _read_into(ServingConfig, env, reload_token=token, reload_token_file=token_file,
                      mpm=_mpm(env), challenger=_challenger(env))


def _comet_key(environ: Mapping[str, Any], needed_by: str) -> str | None:
    """The Comet API key when the feature `needed_by` names is on (then it is required)."""
    if not SETTINGS.read(None, environ, [needed_by])[needed_by]:
        return None
    key, _ = _secret(environ, "COMET_API_KEY", "COMET_API_KEY_FILE")
    if not key:
        raise ConfigError(f"{needed_by} is true: COMET_API_KEY (or COMET_API_KEY_FILE) is "
                          "required")
    return key


def _mpm(environ: Mapping[str, Any]) -> MpmConfig:
    return _read_into(MpmConfig, environ, api_key=_comet_key(environ, "MPM_ENABLED"))


def _challenger(environ: Mapping[str, Any]) -> ChallengerConfig:
    return _read_into(ChallengerConfig, environ, api_key=_comet_key(environ, "VERDICT_ENABLED"))


def load(config: ServingConfig | Mapping[str, Any] | None = None) -> ServingConfig:
    """The config to use: given as is, or the environment with a mapping's overrides.

    A mapping holds variable names (MODEL_ROOT, ...) laid over os.environ, and may hold
    lower-case field names (watch, ...) set on the result.
    """
    if isinstance(config, ServingConfig):
        return config
    overrides = dict(config or {})
    fields = {k: overrides.pop(k) for k in list(overrides) if k.islower()}
    return dataclasses.replace(from_env({**os.environ, **overrides}), **fields)


def front_from_env(environ: Mapping[str, Any] | None = None) -> FrontConfig:
    """Read the front's settings (granian on BIND, the admin listener on ADMIN_PORT)."""
    config = _read_into(FrontConfig, os.environ if environ is None else environ)
    if config.validation_wait >= WORKER_TIMEOUT:
        raise ConfigError(f"VALIDATION_WAIT is {config.validation_wait:g}: expected less than "
                          f"the {WORKER_TIMEOUT:g} s a worker's request may run")
    if config.admin_port is not None and config.bind.rpartition(":")[2] == str(config.admin_port):
        raise ConfigError(f"ADMIN_PORT is {config.admin_port}: expected a port other than BIND's")
    if config.metrics_port is not None and config.admin_port is None:
        raise ConfigError("METRICS_PORT is set without ADMIN_PORT: /metrics would still answer "
                          "on the public port; set ADMIN_PORT too")
    if config.metrics_port is not None and config.metrics_port in (
            config.admin_port, int(config.bind.rpartition(":")[2])):
        raise ConfigError(f"METRICS_PORT is {config.metrics_port}: expected a port other than "
                          "BIND's and ADMIN_PORT")
    if config.body_memory < config.max_body_bytes:
        raise ConfigError("FRONT_BODY_MEMORY is below MAX_BODY_BYTES: expected room for at least "
                          "one whole body")
    if config.worker_max_rss and client_memory(config) >= config.worker_max_rss:
        raise ConfigError(
            f"FRONT_WORKER_MAX_RSS is {config.worker_max_rss // MIB} MiB: expected more than "
            f"the {client_memory(config) // MIB} MiB its clients may make a worker hold "
            "(FRONT_MAX_CONNECTIONS / WEB_CONCURRENCY x FRONT_MAX_HEADER_BYTES + "
            "FRONT_BODY_MEMORY), so that clients alone never get a worker replaced")
    return config


def client_memory(config: FrontConfig) -> int:
    """Bytes the clients of one worker may make it hold: header buffers and bodies."""
    connections = max(1, config.max_connections // config.workers)
    return connections * config.max_header_bytes + config.body_memory
