"""The front (`python -m serving.front`, granian): its settings, and what it does on its own."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time

import psutil
import pytest

from serving.front.command import WORKER_PROCESS_NAME, serving_argv
from tests.support.processes import REPO_ROOT, free_port, wait_until


def _front_env(tmp_path, **variables: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO_ROOT), "MODEL_ROOT": str(tmp_path),
            "BIND": f"127.0.0.1:{free_port()}", **variables}


@pytest.mark.parametrize(("variable", "value"), [("FRONT_HEADER_TIMEOUT", "soon"),
                                                 ("WEB_CONCURRENCY", "0"),
                                                 ("FRONT_MAX_CONNECTIONS", "-5")])
def test_a_bad_setting_stops_the_front_with_a_message_naming_it(tmp_path, variable, value):
    """Exit 2, the variable named, no traceback."""
    done = subprocess.run(serving_argv(), env=_front_env(tmp_path, **{variable: value}),
                          capture_output=True, text=True, timeout=60, cwd=REPO_ROOT)
    assert done.returncode == 2
    assert variable in done.stderr and "Traceback" not in done.stderr


def test_an_admin_port_in_use_stops_the_front_with_a_message_naming_it(tmp_path):
    """Another process holds ADMIN_PORT: exit 2 naming it, not a worker pool without it."""
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen(1)
    port = holder.getsockname()[1]
    try:
        done = subprocess.run(serving_argv(), env=_front_env(tmp_path, ADMIN_PORT=str(port)),
                              capture_output=True, text=True, timeout=60, cwd=REPO_ROOT)
    finally:
        holder.close()
    assert done.returncode == 2
    assert f"ADMIN_PORT {port}" in done.stderr and "Traceback" not in done.stderr


def _raw(url: str, request: bytes) -> bytes:
    """Send request bytes as they are; the answer's status line."""
    host, _, port = url.removeprefix("http://").rpartition(":")
    with socket.create_connection((host, int(port)), timeout=10) as connection:
        connection.sendall(request)
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
    return answer.split(b"\r\n", 1)[0]


@pytest.mark.parametrize("request_line, header", [
    (b"GET /%C4%80 HTTP/1.1", b""),
    (b"GET /a?x=%FF&y=\xc4\x80 HTTP/1.1", b""),
    (b"GET /-/%FF HTTP/1.1", b""),
    (b"GET /api/v1/model HTTP/1.1", b"X-Anything: \xc4\x80\xff\r\n"),
    (b"POST /api/v1/predict HTTP/1.1", b"Content-Type: \xc4\x80\r\nContent-Length: 2\r\n"),
])
def test_bytes_outside_ascii_in_a_request_never_get_a_5xx(served, request_line,
                                                           header):
    """Paths, queries and header values as raw bytes: an answer below 500, never a crash."""
    body = b"{}" if request_line.startswith(b"POST") else b""
    status = _raw(served.url, request_line + b"\r\nHost: x\r\n" + header
                  + b"Connection: close\r\n\r\n" + body)
    assert status.startswith(b"HTTP/1.1 ") and int(status.split()[1]) < 500, status


def test_a_forged_admin_mark_on_the_public_port_is_still_404(served):
    """Only the front's own admin listener knows the mark: a guessed one changes nothing."""
    response = served.session.post(
        served.url + "/-/reload", json={"snapshot": None}, timeout=10,
        headers={"Authorization": f"Bearer {served.token}", "X-Serving-Admin": "0" * 64})
    assert response.status_code == 404


def test_a_killed_worker_is_replaced_and_its_live_gauges_dropped(tmp_path, trained_models):
    """SIGKILL a worker: another one answers, and /metrics no longer reads the dead one's file."""
    from tests.serving.conftest import CLASSIFIER
    from tests.serving.server import start

    server = start(tmp_path / "models", tmp_path, "1.0.0", {CLASSIFIER: trained_models.pipeline})
    try:
        master = psutil.Process(server.master_pid())
        workers = {p.pid for p in master.children() if p.name() == WORKER_PROCESS_NAME}
        assert len(workers) == 2
        victim = min(workers)
        os.kill(victim, signal.SIGKILL)
        wait_until(lambda: len({p.pid for p in master.children()
                                if p.name() == WORKER_PROCESS_NAME} - workers) == 1, 30,
                   what="a new worker")
        server.wait_for_version("1.0.0")
        assert server.session.get(server.url + "/metrics", timeout=10).status_code == 200
        left = [p.name for p in (tmp_path / "metrics").iterdir() if f"_{victim}.db" in p.name]
        assert left and not [name for name in left if name.startswith("gauge_live")], left
    finally:
        server.stop()


def test_sigterm_drains_a_request_in_flight_then_exits_within_the_drain_time(
        tmp_path, trained_models):
    """A request whose body is still arriving at SIGTERM is answered; one that never completes
    does not hold the exit past FRONT_DRAIN_SECONDS."""
    from tests.serving.conftest import CLASSIFIER, VALID
    from tests.serving.server import start

    server = start(tmp_path / "models", tmp_path, "1.0.0", {CLASSIFIER: trained_models.pipeline},
                   FRONT_DRAIN_SECONDS="3", FRONT_BODY_TIMEOUT="60")
    body = json.dumps(VALID).encode()
    host, _, port = server.url.removeprefix("http://").rpartition(":")
    head = (b"POST /api/v1/predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n" % len(body))
    try:
        with socket.create_connection((host, int(port)), timeout=20) as finishing, \
                socket.create_connection((host, int(port)), timeout=20) as never:
            finishing.sendall(head + body[:10])
            never.sendall(head + body[:10])
            time.sleep(0.5)  # both bodies are being awaited by a worker
            stopped = time.monotonic()
            server.process.send_signal(signal.SIGTERM)
            time.sleep(0.5)
            finishing.sendall(body[10:])
            assert finishing.recv(64).startswith(b"HTTP/1.1 200 "), "the request in flight"
            assert server.process.wait(20) == 0
            assert time.monotonic() - stopped < 3 + 5, "past FRONT_DRAIN_SECONDS"
    finally:
        server.stop()
