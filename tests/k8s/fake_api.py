"""A stand-in Kubernetes API server on 127.0.0.1: Pods and Events, every request recorded."""

from __future__ import annotations

import json
import re
import ssl
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

POD = re.compile(r"^/api/v1/namespaces/(?P<ns>[^/]+)/pods/(?P<name>[^/?]+)$")
EVENTS = re.compile(r"^/api/v1/namespaces/(?P<ns>[^/]+)/events$")
EVENT = re.compile(r"^/api/v1/namespaces/(?P<ns>[^/]+)/events/(?P<name>[^/?]+)$")


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
    annotations: dict[str, str] = field(default_factory=dict)
    events: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: list[Request] = field(default_factory=list)
    fail_with: int | None = None  # answer every request with this status
    hang: threading.Event | None = None  # when set to an unset Event, wait on it before answering
    url: str = ""

    def sent(self, method: str, kind: str = "") -> list[Request]:
        """The requests with this method, to pods or events."""
        return [r for r in self.requests if r.method == method and f"/{kind}" in r.path]


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
                "annotations": dict(api.annotations)}}

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

        do_GET = do_POST = do_PATCH = _serve

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
