"""ADMIN_PORT under granian, which binds one address: a small listener in the front's master.

It accepts on 127.0.0.1:ADMIN_PORT (the sidecar's /-/validate and /-/reload, probes) and forwards
each request to the public port with a private mark: a secret drawn by the master before it forks
the workers, so they inherit it in memory (it is in no environment variable, no file, no log).
serving.front.rsgi sets SERVER_PORT to ADMIN_PORT for a request carrying it, so serving.ops keeps
/-/ paths on the admin port only, exactly as when gunicorn binds that port itself.
"""

from __future__ import annotations

import http.client
import secrets
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MARK_HEADER = "X-Serving-Admin"
MARK_ENVIRON = "HTTP_X_SERVING_ADMIN"
HOP_BY_HOP = frozenset({"connection", "keep-alive", "transfer-encoding", "te", "trailer",
                        "upgrade", "proxy-connection", "content-length", MARK_HEADER.lower()})


@dataclass(frozen=True)
class AdminSettings:
    """Where the admin listener accepts and forwards, and for how long it waits."""

    port: int
    upstream_host: str
    upstream_port: int
    max_body_bytes: int
    read_timeout: float
    answer_timeout: float


_secret = secrets.token_hex(32).encode()
_port: int | None = None


def secret() -> bytes:
    """The mark of forwarded requests (drawn once per master, inherited by its workers)."""
    return _secret


def port() -> int | None:
    """ADMIN_PORT when the admin listener forwards to this process's workers, else None."""
    return _port


def start(settings: AdminSettings) -> ThreadingHTTPServer:
    """Listen on 127.0.0.1:port and forward on daemon threads; call before forking workers."""
    global _port
    _port = settings.port
    server = ThreadingHTTPServer(("127.0.0.1", settings.port), _handler(settings))
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="admin-listener", daemon=True).start()
    return server


def _handler(settings: AdminSettings) -> type[BaseHTTPRequestHandler]:
    class Forward(BaseHTTPRequestHandler):
        """One request on the admin port, forwarded to the workers with the mark."""

        protocol_version = "HTTP/1.1"
        timeout = settings.read_timeout  # a slow or silent client is dropped

        def do_GET(self) -> None:
            self._forward()

        do_POST = do_PUT = do_DELETE = do_HEAD = do_GET

        def _forward(self) -> None:
            length = self.headers.get("Content-Length", "0").strip() or "0"
            if not length.isdigit() or int(length) > settings.max_body_bytes:
                self.send_error(413 if length.isdigit() else 411)
                return
            body = self.rfile.read(int(length))
            headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
            headers[MARK_HEADER] = secret().decode()
            upstream = http.client.HTTPConnection(settings.upstream_host, settings.upstream_port,
                                                  timeout=settings.answer_timeout)
            try:
                upstream.request(self.command, self.path, body=body, headers=headers)
                answer = upstream.getresponse()
                data = answer.read()
            except (OSError, http.client.HTTPException):
                self.send_error(502, "serving did not answer")
                return
            finally:
                upstream.close()
            self.send_response(answer.status)
            for name, value in answer.getheaders():
                if name.lower() not in HOP_BY_HOP:
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        def log_message(self, format: str, *args) -> None:
            """Quiet: serving logs its own events."""

    return Forward
