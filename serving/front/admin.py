"""ADMIN_PORT under granian, which binds one address: a small listener in the front's master.

It accepts on 127.0.0.1:ADMIN_PORT (the sidecar's /-/validate and /-/reload, probes) and forwards
each request to the public port with a private mark: a secret drawn by the master before it forks
the workers, so they inherit it in memory (it is in no environment variable, no file, no log).
serving.front.rsgi sets SERVER_PORT to ADMIN_PORT for a request carrying it, so
serving.http.ops keeps /-/ paths on the admin port only, exactly as when gunicorn binds that
port itself. Until the workers listen, it answers 503 `serving_starting` (the sidecar takes it
as "not up").
"""

from __future__ import annotations

import http.client
import secrets
import socket
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import cast

from .body import error_body

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
    host: str = "127.0.0.1"
    only_paths: frozenset[str] | None = None  # None: every path; else these, GET/HEAD only


STARTING = "serving_starting"  # the error of a 503 while no worker listens yet
MAX_CONCURRENT = 16  # admin requests at once (the sidecar sends one at a time)
_secret = secrets.token_hex(32).encode()
_port: int | None = None
_server: ThreadingHTTPServer | None = None
_metrics_server: ThreadingHTTPServer | None = None


def secret() -> bytes:
    """The mark of forwarded requests (drawn once per master, inherited by its workers)."""
    return _secret


def port() -> int | None:
    """ADMIN_PORT when the admin listener forwards to this process's workers, else None."""
    return _port


def start(settings: AdminSettings) -> ThreadingHTTPServer:
    """Listen on 127.0.0.1:port and forward on daemon threads; call before forking workers."""
    global _port, _server
    _port = settings.port
    _server = _listen(settings, "admin-listener")
    return _server


def start_metrics(settings: AdminSettings) -> ThreadingHTTPServer:
    """The METRICS_PORT listener: GET /metrics alone, forwarded like the admin port's."""
    global _metrics_server
    _metrics_server = _listen(settings, "metrics-listener")
    return _metrics_server


def _listen(settings: AdminSettings, name: str) -> ThreadingHTTPServer:
    server = Listener(settings)
    threading.Thread(target=server.serve_forever, name=name, daemon=True).start()
    return server


def close_inherited() -> None:
    """In a forked worker: close the listener's socket (the master alone answers on it)."""
    for server in (_server, _metrics_server):
        if server is not None:
            server.socket.close()


def _is_mark(name: str) -> bool:
    """True for the mark's header under any spelling WSGI would merge with it."""
    return name.lower().replace("_", "-") == MARK_HEADER.lower()


class Listener(ThreadingHTTPServer):
    """Accepts on settings.host:port; its handlers forward by its settings, within its slots."""

    daemon_threads = True

    def __init__(self, settings: AdminSettings):
        self.address_family = socket.AF_INET6 if ":" in settings.host else socket.AF_INET
        self.settings = settings
        self.slots = threading.BoundedSemaphore(MAX_CONCURRENT)
        super().__init__((settings.host, settings.port), Forward)


class Forward(BaseHTTPRequestHandler):
    """One request on the admin port, forwarded to the workers with the mark."""

    protocol_version = "HTTP/1.1"

    @property
    def listener(self) -> Listener:
        return cast(Listener, self.server)

    def setup(self) -> None:
        """Per read and write, the listener's read_timeout: a slow or silent client is dropped."""
        self.timeout = self.listener.settings.read_timeout
        super().setup()

    def handle(self) -> None:
        """At most MAX_CONCURRENT requests at once: beyond, the connection is closed."""
        slots = self.listener.slots
        if not slots.acquire(blocking=False):
            return
        try:
            super().handle()
        finally:
            slots.release()

    def do_GET(self) -> None:
        try:
            self._forward()
        except (OSError, ValueError, UnicodeError, http.client.HTTPException):
            self.close_connection = True  # the client went away, or sent what cannot pass

    do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = do_OPTIONS = do_GET

    def _forward(self) -> None:
        refusal = self._refusal()
        if refusal is not None:
            self._error(*refusal)
            return
        body = self.rfile.read(int(self._length()))
        asked = self._ask_upstream(body)
        if asked is not None:
            self._relay(*asked)

    def _length(self) -> str:
        return (self.headers.get("Content-Length") or "0").strip()

    def _refusal(self) -> tuple[int, str, str] | None:
        """Why the request is not forwarded (status, error, message), or None: forward it."""
        settings = self.listener.settings
        if settings.only_paths is not None and (
                self.command not in ("GET", "HEAD")
                or self.path.partition("?")[0] not in settings.only_paths):
            return 404, "not_found", "only GET /metrics answers on this port"
        if self.headers.get("Transfer-Encoding") is not None:
            return 411, "length_required", "send the body with a Content-Length"
        length = self._length()
        if not (length.isascii() and length.isdigit()):
            return 400, "invalid_input", "Content-Length is not a number of bytes"
        if int(length) > settings.max_body_bytes:
            return 413, "request_entity_too_large", ("the request body is larger than "
                                                     f"{settings.max_body_bytes} bytes")
        return None

    def _ask_upstream(self, body: bytes) -> tuple[http.client.HTTPResponse, bytes] | None:
        """The workers' answer and its body; None once an error has been answered instead."""
        settings = self.listener.settings
        headers = {k: v for k, v in self.headers.items()
                   if k.lower() not in HOP_BY_HOP and not _is_mark(k)}
        headers[MARK_HEADER] = secret().decode()
        upstream = http.client.HTTPConnection(settings.upstream_host, settings.upstream_port,
                                              timeout=settings.answer_timeout)
        try:
            upstream.request(self.command, self.path, body=body, headers=headers)
            answer = upstream.getresponse()
            return answer, answer.read()
        except ConnectionRefusedError:
            # the workers are not listening yet: each validates `current` as it starts
            self._error(503, STARTING, "serving's workers are starting", retry_after=1)
            return None
        except (OSError, http.client.HTTPException):
            self._error(502, "serving_unavailable", "serving did not answer")
            return None
        finally:
            upstream.close()

    def _relay(self, answer: http.client.HTTPResponse, data: bytes) -> None:
        self.send_response_only(answer.status)
        for name, value in answer.getheaders():
            if name.lower() not in HOP_BY_HOP:
                self.send_header(name, value)
        if self.close_connection:  # the client asked: say so, or it reuses a closing socket
            self.send_header("Connection", "close")
        self.send_header("Content-Length", answer.getheader("Content-Length", "0")
                         if self.command == "HEAD" else str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _error(self, status: int, error: str, message: str,
               retry_after: int | None = None) -> None:
        body = error_body(error, message)
        self.send_response_only(status)
        if retry_after is not None:
            self.send_header("Retry-After", str(retry_after))
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)
        self.close_connection = True

    def send_error(self, code: int, message: str | None = None,
                   explain: str | None = None) -> None:
        """http.server's own refusals (a malformed request line...) in the JSON shape."""
        self._error(code, "bad_request" if code < 500 else "admin_listener_error",
                    message or self.responses.get(code, ("error",))[0])

    def log_message(self, format: str, *args) -> None:
        """Quiet: serving logs its own events."""
