"""The sidecar's own HTTP endpoints: /healthz, /readyz, /metrics, /status."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from . import status
from .daemon import Daemon


def health(daemon: Daemon) -> tuple[bool, str]:
    """Healthy while the loop makes progress: its heartbeat is recent enough."""
    config = daemon.config
    allowed = 3 * max(config.interval, config.max_backoff) + config.comet.download_timeout
    age = daemon.clock() - daemon.heartbeat
    return age <= allowed, f"last loop activity {age:.0f}s ago (allowed {allowed:.0f}s)"


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
                self._send(200, status.report(daemon.config.model_root, daemon.state))
            elif path == "/metrics":
                body = generate_latest(daemon.syncer.metrics.registry)
                self._raw(200, body, CONTENT_TYPE_LATEST)
            else:
                self._send(404, {"error": "not found", "paths": ["/healthz", "/readyz",
                                                                 "/metrics", "/status"]})

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
