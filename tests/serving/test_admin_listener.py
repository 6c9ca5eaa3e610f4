"""The front's admin listener, alone, before any worker listens behind it."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import requests

from devkit.processes import free_port
from registry_sync.hooks.notifier import NOT_LISTENING, ServingNotifier, Verdict
from serving.front import admin


def test_before_the_workers_listen_it_answers_starting_which_the_sidecar_takes_as_not_up():
    """At every start the admin port opens before the workers: the sidecar's validate and
    reload then meet a 503 `serving_starting`, not a 502 it would log as a failed sync."""
    settings = admin.AdminSettings(port=0, upstream_host="127.0.0.1", upstream_port=free_port(),
                                   max_body_bytes=1024, read_timeout=5, answer_timeout=5)
    server = admin.Listener(settings)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        answer = requests.post(url + "/-/validate", json={"snapshot": "s1"}, timeout=10)
        assert answer.status_code == 503 and answer.headers["Retry-After"] == "1"
        assert answer.json()["error"] == admin.STARTING
        notifier = ServingNotifier(url, "t0ken", wait=lambda _s: False)
        assert notifier.validate("s1") is Verdict.NOT_UP
        assert notifier.reload("s1") == NOT_LISTENING
    finally:
        server.shutdown()
        server.server_close()


class _Upstream(BaseHTTPRequestHandler):
    """A worker stand-in: 200 and a small JSON body to every POST."""

    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, format: str, *args) -> None:
        """Quiet."""


def test_a_client_that_asks_to_close_is_told_so_and_never_reuses_a_closing_connection():
    """`Connection: close` asked is answered, so back-to-back requests each take a new
    connection (without it, the client reused the one being closed: RemoteDisconnected)."""
    upstream = ThreadingHTTPServer(("127.0.0.1", 0), _Upstream)
    settings = admin.AdminSettings(port=0, upstream_host="127.0.0.1",
                                   upstream_port=upstream.server_address[1],
                                   max_body_bytes=1024, read_timeout=5, answer_timeout=5)
    server = admin.Listener(settings)
    for each in (upstream, server):
        threading.Thread(target=each.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/-/validate"
    try:
        with requests.Session() as session:
            session.headers["Connection"] = "close"
            answers = [session.post(url, json={"snapshot": "s1"}, timeout=10)
                       for _ in range(100)]
        assert {a.status_code for a in answers} == {200}
        assert answers[0].headers["Connection"] == "close"
    finally:
        for each in (server, upstream):
            each.shutdown()
            each.server_close()
