"""The front's admin listener, alone, before any worker listens behind it."""

from __future__ import annotations

import threading
from http.server import ThreadingHTTPServer

import requests

from devkit.processes import free_port
from registry_sync.hooks.notifier import NOT_LISTENING, ServingNotifier, Verdict
from serving.front import admin


def test_before_the_workers_listen_it_answers_starting_which_the_sidecar_takes_as_not_up():
    """At every start the admin port opens before the workers: the sidecar's validate and
    reload then meet a 503 `serving_starting`, not a 502 it would log as a failed sync."""
    settings = admin.AdminSettings(port=0, upstream_host="127.0.0.1", upstream_port=free_port(),
                                   max_body_bytes=1024, read_timeout=5, answer_timeout=5)
    server = ThreadingHTTPServer(("127.0.0.1", 0), admin._handler(settings))
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
