"""`python -m serving.front`: serving as deployed, granian's HTTP (Rust) in front of the Flask app.

This process is granian's master: it imports the libraries, starts the warm validator, opens the
admin listener (ADMIN_PORT) and then forks WEB_CONCURRENCY workers. Each worker parses HTTP in
Rust, awaits a request's whole body on its event loop (serving.front.rsgi) and only then runs the
app, one request at a time. Slow clients are bounded by the header deadline and header size
(granian), the body deadline, size cap and memory (rsgi), the send deadline (listener), and
FRONT_MAX_CONNECTIONS per pod (granian's backpressure, split over the workers). A worker past
FRONT_WORKER_MAX_RSS is replaced gracefully; one that dies is replaced, and one killed by a
signal never stops the front (respawn); SIGTERM drains: the workers stop accepting, finish what
they hold, and are killed after FRONT_DRAIN_SECONDS.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import os
import sys
import threading

from granian.constants import HTTPModes, Interfaces, Loops, RuntimeModes
from granian.http import HTTP1Settings
from granian.log import LogLevels

from serving.config import HARD_DEADLINE_GRACE, MIB, SETTINGS, FrontConfig, front_from_env
from serving.errors import ConfigError
from serving.front import admin, affinity, balance, calls
from serving.front.respawn import Front
from serving.swap import prefork

TARGET = "serving.front.rsgi:app"
LOG_CONFIG = {
    "formatters": {"json": {"()": "model_contract.logs.JsonFormatter"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "json",
                             "stream": "ext://sys.stderr"}},
    "loggers": {"_granian": {"handlers": ["console"], "propagate": False},
                # The master's own events (serving.front.respawn, .calls): JSON like the
                # workers'.
                "serving.front.master": {"handlers": ["console"], "propagate": False,
                                         "level": "INFO"},
                "granian.access": {"handlers": [], "propagate": False}},
}


def server(config: FrontConfig) -> Front:
    """granian configured for these settings (not started)."""
    host, _, port = config.bind.rpartition(":")
    return Front(
        TARGET, address=host.strip("[]"), port=int(port), interface=Interfaces.RSGI,
        workers=config.workers, runtime_mode=RuntimeModes.st, http=HTTPModes.http1,
        websockets=False, backlog=1024, loop=Loops.uvloop,
        # Connections per worker: beyond it, new ones wait in the listen backlog.
        backpressure=max(1, config.max_connections // config.workers),
        # A head past max_buffer_size gets 431: a connection's header buffer is bounded by it.
        http1_settings=HTTP1Settings(header_read_timeout=config.header_timeout * 1000,
                                     keep_alive=True, max_buffer_size=config.max_header_bytes),
        log_level=LogLevels(config.log_level), log_dictconfig=LOG_CONFIG,
        respawn_failed_workers=True, respawn_interval=0.0,
        # Sampled every second: a leak of a few MiB per second passes the bound by little.
        workers_max_rss=config.worker_max_rss // MIB or None, rss_sample_interval=1,
        workers_kill_timeout=config.drain_seconds)


def admin_settings(config: FrontConfig) -> admin.AdminSettings | None:
    """Where the admin listener forwards (the workers' own address), or None without ADMIN_PORT."""
    if config.admin_port is None:
        return None
    host, _, port = config.bind.rpartition(":")
    host = host.strip("[]")
    return admin.AdminSettings(
        port=config.admin_port, upstream_host="127.0.0.1" if host in ("0.0.0.0", "::") else host,
        upstream_port=int(port), max_body_bytes=config.max_body_bytes,
        read_timeout=float(config.body_timeout),
        answer_timeout=config.validation_wait + 30.0)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """No options: every setting is an environment variable, which --help lists."""
    settings = "\n".join(f"  {name:<26} {row.help}" + (f" (default {row.default})"
                                                      if row.default else "")
                         for name, row in SETTINGS.items())
    parser = argparse.ArgumentParser(
        prog="python -m serving.front", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=f"settings (environment variables; env.example has them all):\n{settings}")
    return parser.parse_args(argv)


def metrics_settings(config: FrontConfig,
                     listener: admin.AdminSettings | None) -> admin.AdminSettings | None:
    """GET /metrics alone on METRICS_PORT of BIND's address (Prometheus), or None."""
    if config.metrics_port is None or listener is None:
        return None
    host = config.bind.rpartition(":")[0].strip("[]")
    return dataclasses.replace(listener, port=config.metrics_port, host=host,
                               only_paths=frozenset({"/metrics"}))


def open_listeners(config: FrontConfig) -> str | None:
    """The admin listener, then the metrics one; the error naming the port, or None."""
    listener = admin_settings(config)
    for name, settings, start in (
            ("ADMIN_PORT", listener, admin.start),
            ("METRICS_PORT", metrics_settings(config, listener), admin.start_metrics)):
        if settings is None:
            continue
        try:
            start(settings)
        except OSError as exc:
            return f"{name} {settings.port}: {exc.strerror}"
    return None


def main(argv: list[str] | None = None) -> int:
    """Serve until SIGTERM / SIGINT; exit 2 on a configuration error."""
    parse_args(sys.argv[1:] if argv is None else argv)
    try:
        config = front_from_env()
    except ConfigError as exc:
        print(f"serving.front: {exc}", file=sys.stderr)
        return 2
    if importlib.util.find_spec("uvloop") is None:  # else every worker would fail at start
        print("serving.front: uvloop is not installed: install the [serving] extra",
              file=sys.stderr)
        return 2
    config = prefork.prepare(config)
    validator = prefork.start(config)
    if validator is not None:
        # granian reaps only its workers: a warm validator that dies must not stay a zombie.
        threading.Thread(target=os.waitpid, args=(validator, 0), name="validator-reaper",
                         daemon=True).start()
    # Model calls that no alarm can stop (a C call holding the GIL): the master kills the worker.
    calls.share(config.workers)
    assert calls.CALLS is not None
    assert config.validation_dir is not None  # prepare chose it
    calls.watch(calls.CALLS, config.predict_timeout + HARD_DEADLINE_GRACE, config.model_root,
                config.validation_dir)
    failed = open_listeners(config)
    if failed:
        print(f"serving.front: {failed}", file=sys.stderr)
        return 2
    if config.balance and config.workers > 1:
        try:
            balance.share(config.workers, int(config.bind.rpartition(":")[2]))
        except OSError as exc:  # an optimisation: serve without it rather than not at all
            print(f"serving.front: FRONT_BALANCE is off: {exc.strerror or exc}", file=sys.stderr)
    try:
        affinity.share(config.pin_workers, config.workers)
    except OSError as exc:  # an optimisation too
        print(f"serving.front: workers not pinned: {exc.strerror or exc}", file=sys.stderr)
    server(config).serve()
    return 0


if __name__ == "__main__":
    sys.exit(main())
