"""The sidecar's own HTTP endpoints: /healthz, /readyz, /metrics, /status, and for peers
/-/files/<snapshot>/<model>/<path> (files of complete snapshots, peer.py) and POST /-/poll-now
(a webhook's wake-up), both only with the shared token (RELOAD_TOKEN) as a Bearer token."""

from __future__ import annotations

import hmac
import json
import shutil
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from . import peer, status
from .daemon import Daemon
from .errors import SecretUnavailable


def health(daemon: Daemon) -> tuple[bool, str]:
    """Healthy while the loop makes progress: its heartbeat is recent enough."""
    config = daemon.config
    allowed = 3 * max(config.interval, config.max_backoff) + config.comet.download_timeout
    age = daemon.clock() - daemon.heartbeat
    detail = f"last loop activity {age:.0f}s ago (allowed {allowed:.0f}s)"
    error = daemon.state.last_error or {}
    if error.get("type") == "StatusUnknown":  # alive, but serving nothing new until it is fixed
        detail += f"; {error.get('message')}"
    return age <= allowed, detail


def make_handler(daemon: Daemon) -> type[BaseHTTPRequestHandler]:
    """A request handler bound to one daemon."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/healthz":
                ok, detail = health(daemon)
                self._send(200 if ok else 503, {"ok": ok, "detail": detail})
            elif path == "/readyz":
                ready = daemon.has_good_snapshot()
                self._send(200 if ready else 503, {"ready": ready})
            elif path == "/status":
                report = status.report(daemon.config.model_root, daemon.state)
                if daemon.cluster is not None:
                    report["cluster"] = daemon.cluster.describe()
                self._send(200, report)
            elif path == "/metrics":
                body = generate_latest(daemon.syncer.metrics.registry)
                self._raw(200, body, CONTENT_TYPE_LATEST)
            elif path.startswith(peer.FILES_PREFIX):
                self._file(path)
            else:
                self._send(404, {"error": "not found", "paths": ["/healthz", "/readyz",
                                                                 "/metrics", "/status"]})

        def do_POST(self) -> None:
            if self.path.split("?", 1)[0] != "/-/poll-now":
                self._send(404, {"error": "not found", "paths": ["/-/poll-now"]})
            elif self._authorized():
                daemon.poll_now()
                self._send(202, {"accepted": True})

        def _authorized(self) -> bool:
            """True for the shared token; otherwise answers 401 (403 when none is set)."""
            try:
                token = daemon.config.read_reload_token()  # its file re-read: rotation
            except SecretUnavailable:
                token = ""  # mid-rotation: refused until the file is back
            if not token:
                self._send(403, {"error": "peer endpoints are off: no RELOAD_TOKEN"})
                return False
            sent = self.headers.get("Authorization", "").removeprefix("Bearer ")
            if not hmac.compare_digest(sent.encode(), token.encode()):
                self._send(401, {"error": "missing or wrong token"})
                return False
            return True

        def _file(self, path: str) -> None:
            if not self._authorized():
                return
            found = peer.find_file(daemon.config.model_root, path)
            try:
                handle = open(found, "rb") if found else None  # noqa: SIM115 - closed below
            except OSError:
                handle = None
            if handle is None:
                self._send(404, {"error": "no such file in a complete snapshot"})
                return
            with handle:
                size = handle.seek(0, 2)
                handle.seek(0)
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(size))
                self.end_headers()
                shutil.copyfileobj(handle, self.wfile, 256 * 1024)

        def _send(self, code: int, body: dict) -> None:
            self._raw(code, json.dumps(body, default=str).encode(), "application/json")

        def _raw(self, code: int, body: bytes, content_type: str) -> None:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args) -> None:  # probes every few seconds: no noise
            pass

    return Handler


def start(daemon: Daemon, host: str, port: int) -> ThreadingHTTPServer:
    """Serve the endpoints on a background thread; return the server (shutdown() stops it)."""
    server = ThreadingHTTPServer((host, port), make_handler(daemon))
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="ops-server", daemon=True).start()
    return server
