"""A stand-in Kubernetes API server on 127.0.0.1: Pods, Events and Leases, every request recorded.

Leases and their watches are modelled in devkit/fake_leases.py (its docstring says how
faithfully); Pods are one fixed Pod whose annotations can be patched, Events are kept by name.
Many processes may share one server: it is a threading HTTP server on loopback.
"""

from __future__ import annotations

import json
import re
import ssl
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from devkit.fake_leases import ApiError, LeaseStore

POD = re.compile(r"^/api/v1/namespaces/(?P<ns>[^/]+)/pods/(?P<name>[^/?]+)$")
EVENTS = re.compile(r"^/api/v1/namespaces/(?P<ns>[^/]+)/events$")
EVENT = re.compile(r"^/api/v1/namespaces/(?P<ns>[^/]+)/events/(?P<name>[^/?]+)$")
LEASES = re.compile(r"^/apis/coordination\.k8s\.io/v1/namespaces/(?P<ns>[^/]+)/leases"
                    r"(?:/(?P<name>[^/]+))?$")


@dataclass
class Request:
    """One request as the server received it."""

    method: str
    path: str
    headers: dict[str, str]
    raw: bytes

    @property
    def body(self) -> Any:
        """The JSON body, or None."""
        return json.loads(self.raw) if self.raw else None


@dataclass
class FakeApi:
    """The API server's state and behaviour, changeable by a test while it runs."""

    pod_uid: str = "0f6d1c9e-5b1a-4c59-9a51-6b3c1d2e7f80"
    pod_ip: str = "127.0.0.1"  # every Pod's status.podIP (replicas all run on loopback)
    annotations: dict[str, str] = field(default_factory=dict)
    events: dict[str, dict[str, Any]] = field(default_factory=dict)
    leases: LeaseStore = field(default_factory=LeaseStore)
    requests: list[Request] = field(default_factory=list)
    fail_with: int | None = None  # answer every request with this status
    hang: threading.Event | None = None  # when set to an unset Event, wait on it before answering
    url: str = ""
    watch_timeout: float = 1800.0  # when the client sends no timeoutSeconds
    watches: int = 0  # watch requests received
    watch_lock: threading.Lock = field(default_factory=threading.Lock)

    def sent(self, method: str, kind: str = "") -> list[Request]:
        """The requests with this method, to pods or events."""
        return [r for r in self.requests if r.method == method and f"/{kind}" in r.path]


def _named(query: dict[str, str]) -> str | None:
    """The name of a `fieldSelector=metadata.name=NAME`, the only selector modelled."""
    selector = query.get("fieldSelector", "")
    return selector.removeprefix("metadata.name=") if selector.startswith("metadata.name=") \
        else None


def _handler(api: FakeApi) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            """Stay quiet."""

        def _answer(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _status(self, code: int, reason: str) -> None:
            self._answer(code, {"kind": "Status", "apiVersion": "v1", "status": "Failure",
                                "reason": reason, "code": code})

        def _pod(self, match: re.Match[str]) -> dict[str, Any]:
            return {"apiVersion": "v1", "kind": "Pod", "metadata": {
                "name": match["name"], "namespace": match["ns"], "uid": api.pod_uid,
                "annotations": dict(api.annotations)}, "status": {"podIP": api.pod_ip}}

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            request = Request(self.command, self.path,
                              {k.lower(): v for k, v in self.headers.items()},
                              self.rfile.read(length))
            api.requests.append(request)
            if api.hang is not None:
                api.hang.wait(10)
            if api.fail_with is not None:
                self._status(api.fail_with, "InternalError")
            elif match := LEASES.match(urlsplit(self.path).path):
                self._lease(match, request)
            elif (match := POD.match(self.path)) and self.command == "GET":
                self._answer(200, self._pod(match))
            elif (match := POD.match(self.path)) and self.command == "PATCH":
                for key, value in request.body["metadata"]["annotations"].items():
                    if value is None:
                        api.annotations.pop(key, None)
                    else:
                        api.annotations[key] = value
                self._answer(200, self._pod(match))
            elif EVENTS.match(self.path) and self.command == "POST":
                api.events[request.body["metadata"]["name"]] = request.body
                self._answer(201, request.body)
            elif (match := EVENT.match(self.path)) and self.command == "PATCH":
                if match["name"] not in api.events:
                    self._status(404, "NotFound")
                    return
                api.events[match["name"]].update(request.body)
                self._answer(200, api.events[match["name"]])
            else:
                self._status(404, "NotFound")

        def _lease(self, match: re.Match[str], request: Request) -> None:
            store, ns, name = api.leases, match["ns"], match["name"]
            query = {k: v[-1] for k, v in parse_qs(urlsplit(self.path).query).items()}
            try:
                if self.command == "GET" and name is None and query.get("watch") == "true":
                    self._watch(ns, query)
                elif self.command == "GET" and name is None:
                    self._answer(200, store.list(ns, _named(query)))
                elif self.command == "GET":
                    self._answer(200, store.get(ns, name))
                elif self.command == "POST" and name is None:
                    self._answer(201, store.create(ns, request.body or {}))
                elif self.command == "PUT" and name is not None:
                    self._answer(200, store.update(ns, name, request.body or {}))
                else:
                    self._status(405, "MethodNotAllowed")
            except ApiError as exc:
                self._answer(exc.code, exc.status())

        def _watch(self, ns: str, query: dict[str, str]) -> None:
            timeout = float(query.get("timeoutSeconds") or api.watch_timeout)
            with api.watch_lock:
                api.watches += 1
            started = False

            def start() -> None:
                nonlocal started
                if not started:  # chunked, as the API server streams: each event at once
                    self.protocol_version = "HTTP/1.1"
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Transfer-Encoding", "chunked")
                    self.send_header("Connection", "close")
                    self.end_headers()
                    started = True

            def send(event: dict[str, Any]) -> None:
                start()
                line = json.dumps(event).encode() + b"\n"
                self.wfile.write(b"%x\r\n%s\r\n" % (len(line), line))
                self.wfile.flush()

            try:
                api.leases.watch(ns, _named(query), query.get("resourceVersion", ""),
                                 query.get("allowWatchBookmarks") == "true", timeout, send)
                start()
                self.wfile.write(b"0\r\n\r\n")
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client went away: the watch ends
            self.close_connection = True

        do_GET = do_POST = do_PATCH = do_PUT = _serve

    return Handler


class Server:
    """Runs a FakeApi on 127.0.0.1 (HTTPS when given a certificate and key)."""

    def __init__(self, api: FakeApi, cert: tuple[str, str] | None = None):
        self.api = api
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(api))
        self._server.daemon_threads = True
        scheme = "http"
        if cert is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*cert)
            self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
            scheme = "https"
        self.port = self._server.server_address[1]
        api.url = f"{scheme}://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,),
                                        daemon=True)

    def __enter__(self) -> FakeApi:
        self._thread.start()
        return self.api

    def __exit__(self, *exc: object) -> None:
        if self.api.hang is not None:
            self.api.hang.set()
        self._server.shutdown()
        self._server.server_close()
