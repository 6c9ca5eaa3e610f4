"""The local registry sends webhooks on version created, status changed, tag added/removed.

The receiver is a small real HTTP server on loopback that records what arrives.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from devkit.processes import wait_until
from devkit.registry import unique_name
from local_registry import webhooks


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[dict]]]:
    """A URL that records each POST's headers and JSON body, answering 202."""
    received: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            received.append({"headers": dict(self.headers), "body": json.loads(body)})
            self.send_response(202)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def do_GET(self) -> None:  # what a followed redirect would become
            received.append({"headers": dict(self.headers), "body": None})
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *_: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", received
    server.shutdown()
    server.server_close()


def configure(registry, name: str, hooks: list[dict]):
    return registry.post("webhooks/config", {"webhookConfigs": [{
        "workspaceName": registry.workspace, "modelName": name, "webhookUrls": hooks}]})


def test_events_arrive_with_the_configured_headers_and_secret(local_registry, receiver):
    url, received = receiver
    name = unique_name("hooked")
    local_registry.register_files(name, "1.0.0", {"m": b"1"})
    assert configure(local_registry, name, [{
        "name": "ci", "url": url, "secret": "s3cret-hook", "header": {"X-Team": "ml"},
        "triggers": ["MODEL_VERSION_CREATED", "MODEL_VERSION_STATUS_CHANGED",
                     "MODEL_VERSION_TAG_ADDED", "MODEL_VERSION_TAG_REMOVED"]}]).ok
    local_registry.register_files(name, "1.1.0", {"m": b"2"})
    local_registry.set_status(name, "1.1.0", "Production")
    local_registry.set_status(name, "1.1.0", "Production")  # no change: no event
    local_registry.add_tag(name, "1.1.0", "Canary")
    item = local_registry.item_id(name, "1.1.0")
    assert local_registry.get("write/registry-model/item/stage/delete", modelItemId=item,
                              stage="canary").ok
    wait_until(lambda: len(received) >= 4, 10, what="four webhooks")
    time.sleep(0.3)
    assert [r["body"]["trigger"] for r in received] == [
        "MODEL_VERSION_CREATED", "MODEL_VERSION_STATUS_CHANGED", "MODEL_VERSION_TAG_ADDED",
        "MODEL_VERSION_TAG_REMOVED"]
    first, promoted = received[0], received[1]
    assert {k: first["body"][k] for k in ("workspaceName", "registryModelName", "version")} == {
        "workspaceName": local_registry.workspace, "registryModelName": name, "version": "1.1.0"}
    assert promoted["body"]["status"] == "Production" and received[2]["body"]["stages"] == [
        "canary"]
    assert first["headers"]["Authorization"] == "s3cret-hook"
    assert first["headers"]["X-Team"] == "ml"
    shown = local_registry.get("webhooks/config", workspaceName=local_registry.workspace,
                               modelName=name).json()
    assert "s3cret-hook" not in json.dumps(shown)
    assert "s3cret-hook" not in local_registry.logs()


def test_a_redirecting_hook_is_not_followed_so_its_secret_stays_with_it(local_registry, receiver):
    """A hook answering 302 to another host: nothing reaches that host (urllib would have sent
    the Authorization secret along)."""
    elsewhere, leaked = receiver

    class Redirect(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            self.send_response(302)
            self.send_header("Location", elsewhere)
            self.send_header("Content-Length", "0")
            self.end_headers()
            asked.append(self.path)

        def log_message(self, *_: object) -> None:
            pass

    asked: list[str] = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Redirect)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        name = unique_name("hooked")
        local_registry.register_files(name, "1.0.0", {"m": b"1"})
        configure(local_registry, name, [{"url": f"http://127.0.0.1:{server.server_address[1]}/",
                                          "secret": "s3cret-hook"}])
        local_registry.set_status(name, "1.0.0", "Staging")
        wait_until(lambda: asked, 10, what="the hook asked")
        time.sleep(0.5)
        assert leaked == []
    finally:
        server.shutdown()
        server.server_close()


def test_only_the_configured_triggers_are_sent(local_registry, receiver):
    url, received = receiver
    name = unique_name("hooked")
    local_registry.register_files(name, "1.0.0", {"m": b"1"})
    configure(local_registry, name, [{"url": url, "triggers": ["MODEL_VERSION_STATUS_CHANGED"]}])
    local_registry.register_files(name, "1.1.0", {"m": b"2"})
    local_registry.set_status(name, "1.0.0", "Staging")
    wait_until(lambda: received, 10, what="the status webhook")
    time.sleep(0.3)
    assert [(r["body"]["trigger"], r["body"]["version"]) for r in received] == [
        ("MODEL_VERSION_STATUS_CHANGED", "1.0.0")]


@pytest.mark.parametrize(("hook", "field"), [
    ({"url": "file:///etc/passwd"}, "webhookUrls[0].url"),
    ({"url": "http://x/", "triggers": ["EVERYTHING"]}, "webhookUrls[0].triggers"),
    ({"url": "http://x/", "header": {"X": "a\r\nInjected: 1"}}, "webhookUrls[0].header"),
])
def test_a_bad_webhook_configuration_is_a_400_naming_the_field(local_registry, hook, field):
    name = unique_name("hooked")
    local_registry.register_files(name, "1.0.0", {"m": b"1"})
    answer = configure(local_registry, name, [hook])
    assert answer.status_code == 400 and field in answer.json()["msg"]


@pytest.fixture
def trickler() -> Iterator[str]:
    """A URL whose server reads the request, then answers one byte every 0.5 s (each read of
    the sender's gets a byte well within its timeout) for up to 30 s."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        with contextlib.suppress(OSError):
            connection, _ = listener.accept()
            with connection:
                connection.recv(65536)
                for byte in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"x" * 60:
                    if stop.wait(0.5):
                        return
                    connection.sendall(bytes([byte]))

    threading.Thread(target=serve, daemon=True).start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}/slow"
    stop.set()
    listener.close()


def test_a_hook_that_trickles_its_answer_is_cut_at_the_deadline_and_the_next_is_sent(
        receiver, trickler):
    """A target that answers a byte every 0.5 s holds the single sender thread for the delivery's
    whole deadline (1 s here), not for as long as it trickles: the next event goes out."""
    url, received = receiver
    sender = webhooks.Sender(timeout=1.0)
    body = json.dumps({"n": 1}).encode()
    started = time.monotonic()
    sender.send([webhooks.Delivery(trickler, {"Content-Type": "application/json"}, body, "t"),
                 webhooks.Delivery(url, {"Content-Type": "application/json"}, body, "t")])
    wait_until(lambda: received, 15, what="the event after the trickling hook")
    assert time.monotonic() - started < 5
    assert received[0]["body"] == {"n": 1}
