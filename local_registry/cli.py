"""`local-registry` (python -m local_registry): serve the local registry until SIGTERM/SIGINT."""

from __future__ import annotations

import argparse
import os
import signal
import socket
import sys
import threading
from pathlib import Path

from werkzeug.serving import make_server

from common.settings import Setting, SettingsTable
from model_contract import logs, secret_file

from .app import create_app
from .shapes import DETAILS_SHAPES

log = logs.get(__name__)


class ConfigError(Exception):
    """A bad option: one line on stderr, exit 2."""


class CannotServe(Exception):
    """The registry cannot start (a busy port, an unreadable key file): one line, exit 1."""


SETTINGS = SettingsTable([Setting("LOG_LEVEL", logs.parse_level, "info",
                                  "debug, info, warning or error")], error=ConfigError)


def build_parser() -> argparse.ArgumentParser:
    """The command's options."""
    parser = argparse.ArgumentParser(
        prog="local-registry",
        description="Serve a Comet-compatible model registry (REST API v2) storing under --data.")
    parser.add_argument("--data", type=Path, required=True, metavar="DIR",
                        help="directory holding the registry; created if missing")
    parser.add_argument("--port", type=int, default=0, metavar="N",
                        help="port to listen on (default 0: any free port, logged at start)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--api-key", metavar="KEY", help="the API key clients must send")
    parser.add_argument("--api-key-file", type=Path, metavar="PATH",
                        help="file holding the API key, instead of --api-key")
    parser.add_argument("--workspace", action="append", default=[], metavar="NAME",
                        help="accept only these workspaces (repeatable or comma-separated); "
                             "default: any workspace name")
    parser.add_argument("--member-api-key", metavar="KEY",
                        help="a second key, a workspace member's: its status changes to a status "
                             "under review become requests an owner approves")
    parser.add_argument("--presigned-downloads", action="store_true",
                        help="download-instructions give presigned links (s3DownloadEnabled)")
    parser.add_argument("--details-shape", choices=DETAILS_SHAPES,
                        default=os.environ.get("LOCAL_REGISTRY_DETAILS_SHAPE") or "full",
                        help="registry-model/details with status and tags (full, the default) or "
                             "exactly as the SDK's docstring shows it, without (sdk); env "
                             "LOCAL_REGISTRY_DETAILS_SHAPE")
    parser.add_argument("--login-token-file", type=Path, metavar="PATH",
                        help="file holding a one-time login token: the first browser opening "
                             "/ui/login/TOKEN is logged in to the registry page as owner")
    SETTINGS.add_flags(parser, ["LOG_LEVEL"])
    return parser


def main(argv: list[str] | None = None) -> int:
    """Serve until stopped; a bad option or a busy port is one line on stderr, never a traceback."""
    args = build_parser().parse_args(argv)
    logs.setup(args.log_level or "info")
    try:
        return serve(args)
    except ConfigError as exc:
        print(f"local-registry: configuration error: {exc}", file=sys.stderr)
        return 2
    except CannotServe as exc:
        print(f"local-registry: {logs.mask(str(exc))}", file=sys.stderr)
        return 1


def _api_key(args: argparse.Namespace) -> str:
    if args.api_key:
        return args.api_key
    if args.api_key_file:
        return _secret(args.api_key_file, "--api-key-file")
    raise ConfigError("--api-key (or --api-key-file) is required: the key clients must send")


def _secret(path: Path, option: str) -> str:
    """A secret from its file, stripped; the error names the option and file, never the value."""
    try:
        return secret_file.read(path, option)
    except secret_file.SecretFileError as exc:
        raise CannotServe(str(exc)) from None


def _listen(host: str, port: int) -> socket.socket:
    """A listening socket, bound here so that a busy port is our error, not werkzeug's exit."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    return sock


def serve(args: argparse.Namespace) -> int:
    """Serve the local registry, threaded, until SIGTERM or SIGINT; exit 0 then."""
    key = _api_key(args)
    logs.redact(key)
    logs.redact(args.member_api_key)
    login_token = (_secret(args.login_token_file, "--login-token-file")
                   if args.login_token_file else None)
    logs.redact(login_token)
    if not 0 <= args.port < 65536:
        raise ConfigError(f"--port is {args.port}: expected 0-65535")
    workspaces = {w.strip() for value in args.workspace for w in value.split(",") if w.strip()}
    data = args.data.absolute()
    try:
        app = create_app(data, key, workspaces, member_key=args.member_api_key,
                         presigned=args.presigned_downloads,
                         details_shape=args.details_shape, login_token=login_token)
        with _listen(args.host, args.port) as sock:
            server = make_server(args.host, args.port, app, threaded=True, fd=sock.fileno())
    except (OSError, ValueError, KeyError) as exc:
        raise CannotServe(
            f"local registry cannot listen on {args.host}:{args.port}: {exc}") from exc
    host = f"[{args.host}]" if ":" in args.host else args.host
    url = f"http://{host}:{server.port}"

    def stop(signum: int, _frame: object) -> None:
        log.info("local_registry_stopping", signal=signal.Signals(signum).name)
        # shutdown() waits for serve_forever() to return, which runs on this very thread.
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log.info("local_registry_started", url=url, comet_url_override=f"{url}/clientlib/",
             data=str(data), workspaces=sorted(workspaces))
    try:
        server.serve_forever()
    finally:
        server.server_close()
    log.info("local_registry_stopped")
    return 0
