"""Configuration of serving: read once from the environment into frozen objects.

This is the only module of serving that reads os.environ. A missing or malformed setting raises
ConfigError naming the variable and what it expects.
"""

from __future__ import annotations

import dataclasses
import enum
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from model_contract import logs, secret_file

from .errors import ConfigError

MIB = 1024 * 1024
MIN_HEADER_BYTES = 8192  # the smallest read buffer granian's HTTP/1 parser (hyper) accepts


def _positive_int(value: str) -> int:
    number = int(value)
    if number < 1:
        raise ValueError("a whole number >= 1")
    return number


def _positive_float(value: str) -> float:
    number = float(value)
    if not (number > 0 and math.isfinite(number)):
        raise ValueError("a positive number")
    return number


def _fraction(value: str) -> float:
    number = float(value)
    if not 0 <= number <= 1:
        raise ValueError("a number between 0 and 1")
    return number


def _percent(value: str) -> float:
    number = float(value)
    if not 0 <= number <= 100:
        raise ValueError("a percentage between 0 and 100")
    return number


def _header_name(value: str) -> str:
    if not value.replace("-", "").isalnum() or not value.isascii() or len(value) > 64:
        raise ValueError("an HTTP header name (letters, digits, dashes)")
    return value


def _port(value: str) -> int:
    number = int(value)
    if not 0 < number < 65536:
        raise ValueError("a TCP port between 1 and 65535")
    return number


def _http_url(value: str) -> str:
    if not value.startswith(("http://", "https://")) or len(value) < 10:
        raise ValueError("an http(s) URL such as http://127.0.0.1:8090")
    return value.rstrip("/")


def _mebibytes(value: str) -> int:
    number = int(value)
    if number < 0:
        raise ValueError("a whole number of MiB >= 0 (0: no limit)")
    return number * MIB


def _header_bytes(value: str) -> int:
    number = int(value)
    if number < MIN_HEADER_BYTES:
        raise ValueError(f"a whole number of bytes >= {MIN_HEADER_BYTES} (HTTP's smallest "
                         "header buffer)")
    return number


def _flag(value: str) -> bool:
    if value.lower() in ("1", "true", "yes", "on"):
        return True
    if value.lower() in ("0", "false", "no", "off"):
        return False
    raise ValueError("true or false")


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

# Variable -> (parser, default, meaning). docs/serving.md lists the same table.
SETTINGS: dict[str, tuple[Callable[[str], Any], str | None, str]] = {
    "MODEL_ROOT": (Path, None, "shared directory holding snapshots/ and the current symlink"),
    "RELOAD_TOKEN": (secret_file.checked, None,
                     "shared token for /-/validate and /-/reload"),
    "RELOAD_TOKEN_FILE": (Path, None, "file holding the reload token (instead of RELOAD_TOKEN)"),
    "ADMIN_PORT": (_port, None, "if set, /-/ endpoints and /metrics answer only on this port "
                                "(127.0.0.1)"),
    "METRICS_PORT": (_port, None, "if set (with ADMIN_PORT), GET /metrics also answers on this "
                                  "port of BIND's address, for Prometheus; nothing else does"),
    "MAX_BATCH": (_positive_int, "1000", "most instances in one batch request"),
    "MAX_BODY_BYTES": (_positive_int, str(2 * MIB), "largest accepted request body in bytes"),
    "MODEL_CHECK_INTERVAL": (_positive_float, "0.2", "seconds between checks of `current`"),
    "GOLDEN_MIN_ACCURACY": (_fraction, "0.7",
                            "accuracy a seed-layout snapshot must reach on the bundled sample"),
    "VALIDATION_TIMEOUT": (_positive_float, "120",
                           "seconds the validator process may take to load and check a snapshot"),
    "VALIDATION_MEMORY_LIMIT": (_mebibytes, "768",
                                "address space of the validator process in MiB (0: no limit)"),
    "VALIDATION_WAIT": (_positive_float, "1", "seconds /-/validate (or a worker's start) waits "
                                              "for a verdict before answering 202 (running)"),
    "PREDICT_TIMEOUT": (_positive_float, "0.5",
                        "seconds one model call (champion or canary) may run; then 504, and the "
                        "worker is replaced if the call cannot be stopped"),
    "VALIDATION_DIR": (Path, None, "serving's private folder of validation verdicts, shared by "
                                   "its workers (default: a temporary folder)"),
    "LOG_LEVEL": (logs.parse_level, "info", "debug, info, warning or error"),
    "PROMETHEUS_MULTIPROC_DIR": (Path, None, "metrics folder shared by the workers"),
    "BIND": (_bind, "127.0.0.1:8080", "public address"),
    "WEB_CONCURRENCY": (_positive_int, "2", "worker processes"),
    "FRONT_HEADER_TIMEOUT": (_positive_int, "10", "seconds a client has to send a request's "
                                                  "whole header, and an idle keep-alive "
                                                  "connection stays open"),
    "FRONT_BODY_TIMEOUT": (_positive_int, "10", "seconds a request's whole body has to arrive"),
    "FRONT_MAX_CONNECTIONS": (_positive_int, "1024", "most connections the pod holds at once "
                                                     "(split over its workers)"),
    "FRONT_DRAIN_SECONDS": (_positive_int, "20", "on SIGTERM, seconds to finish requests in "
                                                 "flight before exiting"),
    "FRONT_BODY_MEMORY": (_mebibytes, "64", "MiB of request bodies one worker receives at once; "
                                            "past it, 503"),
    "FRONT_SEND_TIMEOUT": (_positive_int, "10", "seconds an answer may wait unread (or "
                                                "unacknowledged) by its client; then the "
                                                "connection is closed"),
    "FRONT_MAX_HEADER_BYTES": (_header_bytes, "16384", "largest request head (request line and "
                                                       "headers) in bytes; larger: 431"),
    "FRONT_WORKER_MAX_RSS": (_mebibytes, "0", "MiB of resident memory past which a worker is "
                                              "replaced gracefully (0: never)"),
    "FRONT_BALANCE": (_flag, "true", "a worker holding 2 more busy kept-alive connections than "
                                     "another closes one after its answer, so clients reconnect "
                                     "evenly"),
    "FRONT_PIN_WORKERS": (_pin_workers, "auto", "run each worker on a CPU of its own: auto "
                                                "(when the CPUs serving may use number exactly "
                                                "WEB_CONCURRENCY), true or false"),
    # Comet MPM (docs/monitoring.md). The comet_mpm SDK reads COMET_URL_OVERRIDE itself too.
    "MPM_ENABLED": (_flag, "false", "send prediction events to Comet Model Production Monitoring"),
    "MPM_SAMPLE_RATE": (_fraction, "1", "share of prediction requests sent to MPM (0 to 1)"),
    "MPM_QUEUE_SIZE": (_positive_int, "1000",
                       "MPM events a worker buffers before dropping (and counting) new ones"),
    "MPM_BATCH_SECONDS": (_positive_int, None, "most seconds an MPM event waits to be sent "
                          "(unset: the SDK's COMET_MPM_MAX_BATCH_TIME, default 60)"),
    "MPM_BATCH_SIZE": (_positive_int, None, "most MPM events in one upload "
                       "(unset: the SDK's COMET_MPM_MAX_BATCH_SIZE, default 1000)"),
    "MPM_SEND_TIMEOUT": (_positive_int, "10", "seconds an MPM upload or ping may take"),
    "LABELS_PER_SECOND": (_positive_int, "20", "labels a worker accepts per second; past it, 429"),
    "LABELS_QUEUE_SIZE": (_positive_int, "200", "labels a worker buffers for MPM (apart from "
                                                "prediction events); past it, 503"),
    "LABELS_MAX_AGE": (_positive_float, "604800", "seconds after a prediction its label is "
                                                  "still accepted"),
    "COMET_API_KEY": (secret_file.checked, None,
                      "Comet API key, for MPM (or use COMET_API_KEY_FILE)"),
    "COMET_API_KEY_FILE": (Path, None, "file holding the Comet API key, read at start"),
    "COMET_WORKSPACE": (str, None, "MPM workspace when the snapshot's manifest names none"),
    "COMET_URL_OVERRIDE": (str, None, "Comet server (else the one the API key names, else "
                           "https://www.comet.com); MPM is at its scheme://host:port/mpm/"),
    "WEBHOOK_SECRET": (secret_file.checked, None,
                       "secret Comet's webhook sends; unset: the webhook is off"),
    "WEBHOOK_HEADER": (str, "Authorization", "header that carries the webhook secret"),
    "WEBHOOK_PER_MINUTE": (_positive_int, "6", "webhook calls accepted per minute per worker"),
    "SIDECAR_URL": (_http_url, "http://127.0.0.1:8090", "the local sidecar a webhook call wakes"),
    # Champion and challenger (docs/challenger.md): MODEL_ROOT/candidate, when present.
    "CHALLENGER_ENABLED": (_flag, "true", "load MODEL_ROOT/candidate beside the champion"),
    "CANARY_PERCENT": (_percent, "0", "share of requests the challenger answers (0: shadow)"),
    "CANARY_KEY_HEADER": (_header_name, None,
                          "request header whose value keeps a client on one role (else the "
                          "client address)"),
    "SHADOW_QUEUE_SIZE": (_positive_int, "1000",
                          "inputs a worker holds for the challenger before dropping new ones"),
    "SHADOW_PROCESS": (_flag, "true", "score the challenger's shadow calls in a process of its "
                                      "own, each bounded by PREDICT_TIMEOUT (false: a thread of "
                                      "the worker, sharing its GIL)"),
    "CHALLENGER_WINDOW": (_positive_int, "1000", "latest comparisons in the rolling figures"),
    "GUARD_WINDOW": (_positive_int, "100", "latest canary answers the guard judges"),
    "GUARD_MIN_ANSWERS": (_positive_int, "20", "canary answers the guard needs before judging"),
    "GUARD_MAX_ERROR_RATE": (_fraction, "0.05",
                             "challenger error rate that ends the canary"),
    "GUARD_MAX_LATENCY_MS": (_positive_float, "250",
                             "challenger p95 latency in ms that ends the canary"),
    "VERDICT_ENABLED": (_flag, "false",
                        "log the comparison as metrics on the challenger's Comet experiment"),
    "VERDICT_INTERVAL": (_positive_float, "30", "seconds between uploads of the comparison"),
}


def _read(environ: Mapping[str, Any], name: str) -> Any:
    parse, default, _ = SETTINGS[name]
    raw = environ.get(name)
    raw = default if raw is None or str(raw).strip() == "" else str(raw).strip()
    if raw is None:
        return None
    try:
        return parse(raw)
    except ValueError as exc:
        shown = "(hidden)" if name in ("RELOAD_TOKEN", "COMET_API_KEY", "WEBHOOK_SECRET") \
            else repr(raw)
        raise ConfigError(f"{name} is {shown}: expected {exc}") from None


@dataclass(frozen=True)
class MpmConfig:
    """Comet MPM settings: off unless enabled, then an API key is required."""

    enabled: bool = False
    sample_rate: float = 1.0
    queue_size: int = 1000
    batch_seconds: int | None = None  # None: the comet_mpm SDK's own setting decides
    batch_size: int | None = None
    send_timeout: int = 10
    api_key: str | None = dataclasses.field(default=None, repr=False)
    workspace: str | None = None
    url: str | None = None  # None: the server the API key names, else Comet's own
    labels_per_second: int = 20
    labels_queue_size: int = 200
    labels_max_age: float = 604800.0


@dataclass(frozen=True)
class ChallengerConfig:
    """The challenger: shadow unless a canary share is set; the guard; the verdict in Comet."""

    enabled: bool = True
    canary_percent: float = 0.0
    key_header: str | None = None
    queue_size: int = 1000
    shadow_process: bool = True
    window: int = 1000
    guard_window: int = 100
    guard_min_answers: int = 20
    guard_max_error_rate: float = 0.05
    guard_max_latency_ms: float = 250.0
    verdict_enabled: bool = False
    verdict_interval: float = 30.0
    api_key: str | None = dataclasses.field(default=None, repr=False)
    url: str | None = None  # COMET_URL_OVERRIDE; else the key's server, else Comet's own


@dataclass(frozen=True)
class ServingConfig:
    """Everything the Flask application needs, validated."""

    model_root: Path
    reload_token: str | None = dataclasses.field(default=None, repr=False)
    reload_token_file: Path | None = None
    admin_port: int | None = None
    max_batch: int = 1000
    max_body_bytes: int = 2 * MIB
    check_interval: float = 0.2
    golden_min_accuracy: float = 0.7
    validation_timeout: float = 120.0
    validation_memory_limit: int = 768 * MIB
    validation_wait: float = 1.0
    validation_dir: Path | None = None
    predict_timeout: float = 0.5
    log_level: str = "info"
    metrics_dir: Path | None = None
    mpm: MpmConfig = MpmConfig()
    challenger: ChallengerConfig = ChallengerConfig()
    watch: bool = True  # tests turn the background watcher off to drive swaps by hand
    webhook_secret: str | None = dataclasses.field(default=None, repr=False)
    webhook_header: str = "Authorization"
    webhook_per_minute: int = 6
    sidecar_url: str = "http://127.0.0.1:8090"
    isolate_validation: bool = True  # tests of other parts validate in-process, faster


@dataclass(frozen=True)
class FrontConfig:
    """What `python -m serving.front` needs: addresses, workers, deadlines and limits."""

    bind: str
    admin_port: int | None
    metrics_port: int | None
    workers: int
    max_body_bytes: int
    header_timeout: int
    body_timeout: int
    max_connections: int
    drain_seconds: int
    body_memory: int
    send_timeout: int
    max_header_bytes: int
    worker_max_rss: int  # bytes; 0: no bound
    balance: bool
    pin_workers: PinWorkers
    validation_wait: float
    metrics_dir: Path | None
    log_level: str
    predict_timeout: float = 0.5
    model_root: Path | None = None


def _token(environ: Mapping[str, Any]) -> str | None:
    return _secret(environ, "RELOAD_TOKEN", "RELOAD_TOKEN_FILE")


def _secret(environ: Mapping[str, Any], name: str, file_name: str) -> str | None:
    """A secret given in a variable, or else in the file another variable names."""
    token = _read(environ, name)
    path = _read(environ, file_name)
    if token or path is None:
        return token or None
    try:
        return secret_file.read(path, file_name)
    except secret_file.SecretFileError as exc:
        raise ConfigError(str(exc)) from None


def from_env(environ: Mapping[str, Any] | None = None) -> ServingConfig:
    """Read the serving settings from the environment (or a mapping of variables)."""
    env = os.environ if environ is None else environ
    root = _read(env, "MODEL_ROOT")
    if root is None:
        raise ConfigError("MODEL_ROOT is required: " + SETTINGS["MODEL_ROOT"][2])
    return ServingConfig(
        model_root=root, reload_token=_token(env),
        reload_token_file=None if _read(env, "RELOAD_TOKEN") else _read(env, "RELOAD_TOKEN_FILE"),
        admin_port=_read(env, "ADMIN_PORT"),
        max_batch=_read(env, "MAX_BATCH"), max_body_bytes=_read(env, "MAX_BODY_BYTES"),
        check_interval=_read(env, "MODEL_CHECK_INTERVAL"),
        golden_min_accuracy=_read(env, "GOLDEN_MIN_ACCURACY"),
        validation_timeout=_read(env, "VALIDATION_TIMEOUT"),
        validation_memory_limit=_read(env, "VALIDATION_MEMORY_LIMIT"),
        validation_wait=_read(env, "VALIDATION_WAIT"), validation_dir=_read(env, "VALIDATION_DIR"),
        log_level=_read(env, "LOG_LEVEL"), predict_timeout=_read(env, "PREDICT_TIMEOUT"),
        metrics_dir=_read(env, "PROMETHEUS_MULTIPROC_DIR"), mpm=_mpm(env),
        webhook_secret=_read(env, "WEBHOOK_SECRET"), webhook_header=_read(env, "WEBHOOK_HEADER"),
        webhook_per_minute=_read(env, "WEBHOOK_PER_MINUTE"),
        sidecar_url=_read(env, "SIDECAR_URL"),
        challenger=_challenger(env),
    )


def _mpm(environ: Mapping[str, Any]) -> MpmConfig:
    enabled = _read(environ, "MPM_ENABLED")
    key = _secret(environ, "COMET_API_KEY", "COMET_API_KEY_FILE") if enabled else None
    if enabled and not key:
        raise ConfigError("MPM_ENABLED is true: COMET_API_KEY (or COMET_API_KEY_FILE) is required")
    return MpmConfig(enabled=enabled, sample_rate=_read(environ, "MPM_SAMPLE_RATE"),
                     queue_size=_read(environ, "MPM_QUEUE_SIZE"),
                     batch_seconds=_read(environ, "MPM_BATCH_SECONDS"),
                     batch_size=_read(environ, "MPM_BATCH_SIZE"),
                     send_timeout=_read(environ, "MPM_SEND_TIMEOUT"), api_key=key,
                     workspace=_read(environ, "COMET_WORKSPACE"),
                     url=_read(environ, "COMET_URL_OVERRIDE"),
                     labels_per_second=_read(environ, "LABELS_PER_SECOND"),
                     labels_queue_size=_read(environ, "LABELS_QUEUE_SIZE"),
                     labels_max_age=_read(environ, "LABELS_MAX_AGE"))


def _challenger(environ: Mapping[str, Any]) -> ChallengerConfig:
    verdict = _read(environ, "VERDICT_ENABLED")
    key = _secret(environ, "COMET_API_KEY", "COMET_API_KEY_FILE") if verdict else None
    if verdict and not key:
        raise ConfigError("VERDICT_ENABLED is true: COMET_API_KEY (or COMET_API_KEY_FILE) is "
                          "required")
    return ChallengerConfig(
        enabled=_read(environ, "CHALLENGER_ENABLED"),
        canary_percent=_read(environ, "CANARY_PERCENT"),
        key_header=_read(environ, "CANARY_KEY_HEADER"),
        queue_size=_read(environ, "SHADOW_QUEUE_SIZE"),
        shadow_process=_read(environ, "SHADOW_PROCESS"), window=_read(environ, "CHALLENGER_WINDOW"),
        guard_window=_read(environ, "GUARD_WINDOW"),
        guard_min_answers=_read(environ, "GUARD_MIN_ANSWERS"),
        guard_max_error_rate=_read(environ, "GUARD_MAX_ERROR_RATE"),
        guard_max_latency_ms=_read(environ, "GUARD_MAX_LATENCY_MS"),
        verdict_enabled=verdict, verdict_interval=_read(environ, "VERDICT_INTERVAL"),
        api_key=key, url=_read(environ, "COMET_URL_OVERRIDE"))


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
    env = os.environ if environ is None else environ
    config = FrontConfig(
        bind=_read(env, "BIND"), admin_port=_read(env, "ADMIN_PORT"),
        metrics_port=_read(env, "METRICS_PORT"),
        workers=_read(env, "WEB_CONCURRENCY"), max_body_bytes=_read(env, "MAX_BODY_BYTES"),
        header_timeout=_read(env, "FRONT_HEADER_TIMEOUT"),
        body_timeout=_read(env, "FRONT_BODY_TIMEOUT"),
        max_connections=_read(env, "FRONT_MAX_CONNECTIONS"),
        drain_seconds=_read(env, "FRONT_DRAIN_SECONDS"),
        body_memory=_read(env, "FRONT_BODY_MEMORY"), send_timeout=_read(env, "FRONT_SEND_TIMEOUT"),
        max_header_bytes=_read(env, "FRONT_MAX_HEADER_BYTES"),
        worker_max_rss=_read(env, "FRONT_WORKER_MAX_RSS"), balance=_read(env, "FRONT_BALANCE"),
        pin_workers=_read(env, "FRONT_PIN_WORKERS"), validation_wait=_read(env, "VALIDATION_WAIT"),
        metrics_dir=_read(env, "PROMETHEUS_MULTIPROC_DIR"), log_level=_read(env, "LOG_LEVEL"),
        predict_timeout=_read(env, "PREDICT_TIMEOUT"), model_root=_read(env, "MODEL_ROOT"))
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
