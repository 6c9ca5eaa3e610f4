"""The Flask app under granian's RSGI interface: a request's body arrives before the app runs.

granian reads and parses HTTP in Rust; under its WSGI interface a request's body is read from
the worker's one Python thread, so a client trickling its body would hold the worker. Here the
body is awaited on the worker's event loop (serving.front.body: whole, bounded in time, size and
memory) while other requests are answered; only then is the WSGI app called, with an environ
built from the request alone (never the process's environment, which holds secrets; header
names with `_` are dropped, as nginx and gunicorn do, since WSGI would merge them with `-`).
A request forwarded by the admin listener (serving.front.admin) carries the front's private
mark; it alone is seen as arriving on ADMIN_PORT. A worker whose request runs past
WORKER_TIMEOUT is killed by its own watchdog thread and replaced by the master, as gunicorn's
worker timeout did.
"""

from __future__ import annotations

import asyncio
import hmac
import io
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from model_contract.logs import EventLogger
from serving.config import WORKER_TIMEOUT
from serving.swap import deadline
from serving.swap.validator import die_with_parent, name_process

from . import admin, affinity, balance, calls, listener
from .body import BodyLimits, BodyMemory, BodyRefused, error_body, read_body
from .command import WORKER_PROCESS_NAME

log = EventLogger("serving.front")
ADMIN_PREFIX = "/-/"  # serving.http.ops: validate and reload, the sidecar's calls
BODYLESS = frozenset({"GET", "HEAD", "OPTIONS", "DELETE"})
SPECIAL_HEADERS = {"content-type": "CONTENT_TYPE", "content-length": "CONTENT_LENGTH"}


class _StartResponse:
    """Keeps what the WSGI app passed to start_response."""

    __slots__ = ("headers", "status")

    def __call__(self, status: str, headers: list[tuple[str, str]], exc_info: Any = None):
        self.status, self.headers = int(status[:3]), headers


class RsgiFront:
    """An RSGI application around a WSGI one (granian calls __rsgi__ on its event loop)."""

    def __init__(self, load_app: Callable[[], Callable], limits: BodyLimits,
                 options: listener.ListenerOptions | None = None):
        self.load_app, self.limits, self.memory = load_app, limits, BodyMemory(limits.memory)
        self.listener_options = options
        self.app: Callable | None = None
        self.shed_count: Callable[[], None] = lambda: None  # the app's metric, once it is built
        self.busy_since: float | None = None  # when the request running now started

    def __rsgi_init__(self, loop: Any) -> None:
        """In each worker, once, after the fork: name the process, then build the app."""
        name_process(WORKER_PROCESS_NAME)
        die_with_parent(os.getppid())  # a worker never outlives its master
        admin.close_inherited()
        if self.listener_options is not None:  # granian makes the listener after this returns
            listener.apply_when_listening(self.listener_options)
        try:
            cpu, not_pinned = affinity.pin_this_worker(), None  # before the app's threads
        except affinity.NotPinned as exc:
            cpu, not_pinned = None, str(exc)
        self.app = self.load_app()
        from serving.telemetry.metrics import CONNECTIONS_SHED  # the app has chosen the folder

        self.shed_count = CONNECTIONS_SHED.inc
        log.info("Booting worker", pid=os.getpid(), cpu=cpu)  # after the app has set up logging
        if not_pinned is not None:
            log.warning("worker_not_pinned", pid=os.getpid(), reason=not_pinned)
        # Only now: a worker still loading its model must not look like the least busy one.
        if balance.LOADS is not None and not balance.LOADS.claim():
            log.warning("connection_balance_off", pid=os.getpid(),
                        reason="no free slot among the workers' shared counts")
        if calls.CALLS is not None and calls.CALLS.claim():
            deadline.CALLS = calls.CALLS  # the master's hard deadline sees this worker's calls
        threading.Thread(target=self._watchdog, name="worker-watchdog", daemon=True).start()

    async def __rsgi__(self, scope: Any, protocol: Any) -> None:
        """Read the body (bounded), call the app, send its answer in one piece."""
        try:
            body = b"" if scope.method in BODYLESS else \
                await read_body(scope, protocol, self.limits, self.memory)
        except BodyRefused as refused:
            headers = [("content-type", "application/json"), ("connection", "close")]
            if refused.retry_after is not None:
                headers.append(("retry-after", str(refused.retry_after)))
            protocol.response_bytes(refused.status, headers,
                                    error_body(refused.error, str(refused)))
            return
        environ = self._environ(scope, body)
        admin_call = scope.path.startswith(ADMIN_PREFIX)
        if admin_call:
            # /-/validate and /-/reload wait for a verdict or load a model: on a thread of
            # their own, so this worker's other connections are answered meanwhile.
            status, headers, answer = await asyncio.to_thread(self._closed_call, environ)
            close = _nothing
        else:
            self.busy_since = time.monotonic()
            try:
                status, headers, answer, close = self._call(environ)
            finally:
                self.busy_since = None
        try:
            loads = balance.LOADS
            if loads is not None and not admin_call and loads.should_shed(scope.client):
                headers = [*headers, ("connection", "close")]
                self.shed_count()
            protocol.response_bytes(status, headers, answer)
        finally:
            close()  # after the answer is handed over: what the app runs on close comes after

    def _call(self, environ: dict[str, Any]) -> tuple[int, list[tuple[str, str]], bytes,
                                                      Callable[[], None]]:
        """The WSGI app's answer (status, headers, the whole body) and its close, to call once
        the answer is handed over (what the app runs on close, e.g. shadow scoring, comes after)."""
        start = _StartResponse()
        result = self.app(environ, start)
        close = getattr(result, "close", None) or _nothing
        try:
            answer = b"".join(result)
        except BaseException:
            close()
            raise
        return start.status, start.headers, answer, close

    def _closed_call(self, environ: dict[str, Any]) -> tuple[int, list[tuple[str, str]], bytes]:
        """The WSGI app's answer, its result closed at once (on the calling thread)."""
        status, headers, answer, close = self._call(environ)
        close()
        return status, headers, answer

    def _watchdog(self) -> None:
        """Kill this worker if one request outlasts WORKER_TIMEOUT (the master starts another)."""
        while True:
            time.sleep(1.0)
            started = self.busy_since
            if started is not None and time.monotonic() - started > WORKER_TIMEOUT:
                log.error("worker_timeout", pid=os.getpid(), seconds=WORKER_TIMEOUT)
                os.kill(os.getpid(), signal.SIGKILL)

    def _environ(self, scope: Any, body: bytes) -> dict[str, Any]:
        server, _, port = scope.server.rpartition(":")
        environ = {
            "REQUEST_METHOD": scope.method, "SCRIPT_NAME": "",
            "PATH_INFO": _wsgi_text(scope.path), "QUERY_STRING": _wsgi_text(scope.query_string),
            "SERVER_NAME": server, "SERVER_PORT": port,
            "SERVER_PROTOCOL": f"HTTP/{scope.http_version}",
            "REMOTE_ADDR": scope.client.rpartition(":")[0].strip("[]"),
            "wsgi.version": (1, 0), "wsgi.url_scheme": scope.scheme,
            "wsgi.input": io.BytesIO(body), "wsgi.input_terminated": True,
            "wsgi.errors": sys.stderr, "wsgi.multithread": False, "wsgi.multiprocess": True,
            "wsgi.run_once": False, "CONTENT_LENGTH": str(len(body)),
        }
        for name, value in scope.headers.items():
            if "_" in name:
                continue
            key = SPECIAL_HEADERS.get(name) or "HTTP_" + name.upper().replace("-", "_")
            if key == "CONTENT_LENGTH":
                continue  # the body's real length, read above, is the one that counts
            value = _wsgi_text(value)
            environ[key] = f"{environ[key]},{value}" if key in environ else value
        mark = environ.pop(admin.MARK_ENVIRON, None)
        if mark is not None and admin.port() is not None and \
                hmac.compare_digest(mark.encode(), admin.secret()):
            environ["SERVER_PORT"] = str(admin.port())
        return environ


def _nothing() -> None:
    """The close of a WSGI result that has none."""


def _wsgi_text(text: str) -> str:
    """granian's text as WSGI wants it: its UTF-8 bytes read as latin-1 (PEP 3333)."""
    return text if text.isascii() else text.encode("utf-8", "surrogateescape").decode("latin-1")


def _load_flask_app() -> Callable:
    from serving.wsgi import app

    return app


def _from_env() -> tuple[BodyLimits, listener.ListenerOptions]:
    from serving.config import front_from_env

    config = front_from_env()
    return (BodyLimits(max_bytes=config.max_body_bytes, timeout=float(config.body_timeout),
                       memory=config.body_memory),
            listener.ListenerOptions(port=int(config.bind.rpartition(":")[2]),
                                     send_timeout=float(config.send_timeout)))


app = RsgiFront(_load_flask_app, *_from_env())
