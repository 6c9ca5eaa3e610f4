"""The front (`python -m serving.front`, granian): its settings, and what it does on its own."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time

import psutil
import pytest
import requests

from devkit.processes import REPO_ROOT, free_port, wait_until
from serving.front.command import serving_argv


def _front_env(tmp_path, **variables: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO_ROOT), "MODEL_ROOT": str(tmp_path),
            "BIND": f"127.0.0.1:{free_port()}", **variables}


@pytest.mark.parametrize(("variable", "value"), [("FRONT_HEADER_TIMEOUT", "soon"),
                                                 ("WEB_CONCURRENCY", "0"),
                                                 ("FRONT_PIN_WORKERS", "sometimes"),
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
    from tests.support.diamonds import CLASSIFIER
    from tests.support.serving_process import start

    server = start(tmp_path / "models", tmp_path, "1.0.0", {CLASSIFIER: trained_models.pipeline})
    try:
        workers = server.worker_pids()
        assert len(workers) == 2
        victim = min(workers)
        os.kill(victim, signal.SIGKILL)
        wait_until(lambda: len(server.worker_pids() - workers) == 1, 30, what="a new worker")
        server.wait_for_version("1.0.0")
        assert server.session.get(server.admin_url + "/metrics", timeout=10).status_code == 200
        left = [p.name for p in (tmp_path / "metrics").iterdir() if f"_{victim}.db" in p.name]
        assert left and not [name for name in left if name.startswith("gauge_live")], left
    finally:
        server.stop()


def _cpus_of(pid: int) -> set[frozenset[int]]:
    """The distinct CPU sets the threads of a process may run on (one set: all alike)."""
    found = set()
    for thread in psutil.Process(pid).threads():
        with contextlib.suppress(ProcessLookupError):  # a thread that ended meanwhile
            found.add(frozenset(os.sched_getaffinity(thread.id)))
    return found


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs a CPU for each of 2 workers")
def test_each_worker_runs_on_a_cpu_of_its_own_and_a_replacement_takes_the_dead_ones(
        tmp_path, trained_models):
    """FRONT_PIN_WORKERS=true: each worker's threads on one CPU, its own; a replacement on the
    dead worker's CPU."""
    from tests.support.diamonds import CLASSIFIER, VALID
    from tests.support.serving_process import start

    server = start(tmp_path / "models", tmp_path, "1.0.0", {CLASSIFIER: trained_models.pipeline},
                   FRONT_PIN_WORKERS="true")
    try:
        workers = server.worker_pids()
        placed = {pid: _cpus_of(pid) for pid in workers}
        assert all(len(sets) == 1 and len(next(iter(sets))) == 1 for sets in placed.values()), \
            placed
        assert len(set.union(*placed.values())) == 2, f"two workers on one CPU: {placed}"
        victim = min(workers)
        os.kill(victim, signal.SIGKILL)
        wait_until(lambda: len(server.worker_pids() - workers) == 1, 30, what="a new worker")
        (replacement,) = server.worker_pids() - workers
        # Listed as soon as it is named, pinned a moment later: wait for it.
        wait_until(lambda: _cpus_of(replacement) == placed[victim], 30,
                   what="the replacement on the dead worker's CPU")
        (survivor,) = workers - {victim}
        assert _cpus_of(survivor) == placed[survivor]
        server.wait_for_version("1.0.0")
        assert server.session.post(server.url + "/api/v1/predict", json=VALID,
                                   timeout=10).status_code == 200
    finally:
        server.stop()


def test_sigterm_drains_a_request_in_flight_then_exits_within_the_drain_time(
        tmp_path, trained_models):
    """A request whose body is still arriving at SIGTERM is answered; one that never completes
    does not hold the exit past FRONT_DRAIN_SECONDS."""
    from tests.support.diamonds import CLASSIFIER, VALID
    from tests.support.serving_process import start

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


def _holding(url: str, size: int, sent: int) -> socket.socket:
    """A connection whose POST announced `size` bytes and sent `sent` of them, then waits."""
    host, _, port = url.removeprefix("http://").rpartition(":")
    connection = socket.create_connection((host, int(port)), timeout=20)
    connection.sendall(b"POST /api/v1/predict HTTP/1.1\r\nHost: x\r\nContent-Type: "
                       b"application/json\r\nContent-Length: %d\r\n\r\n" % size + b" " * sent)
    return connection


def test_bodies_held_open_are_bounded_by_the_body_memory_then_others_pass(
        tmp_path, trained_models):
    """Many large bodies held open: once FRONT_BODY_MEMORY is in use, 503 with Retry-After;
    small predictions still pass, and once they close, so do large bodies."""
    from tests.support.diamonds import CLASSIFIER
    from tests.support.serving_process import start

    size = 300_000  # over WHOLE_READ_BYTES: streamed and counted
    server = start(tmp_path / "models", tmp_path, "1.0.0", {CLASSIFIER: trained_models.pipeline},
                   WEB_CONCURRENCY="1", MAX_BODY_BYTES=str(size), FRONT_BODY_MEMORY="1",
                   FRONT_BODY_TIMEOUT="30")
    held = []
    try:
        held = [_holding(server.url, size, size - 1) for _ in range(3)]  # ~0.86 MiB of 1
        time.sleep(1.0)
        refused = _holding(server.url, size, size - 1)
        answer = refused.recv(4096)
        refused.close()
        assert answer.startswith(b"HTTP/1.1 503 ") and b"retry-after: 1" in answer.lower()
        assert server.predict().status_code == 200, "a small body still fits"
    finally:
        for connection in held:
            connection.close()
    time.sleep(0.5)
    with _holding(server.url, size, size) as whole:
        assert whole.recv(64).startswith(b"HTTP/1.1 400 "), "read and parsed (blanks: bad JSON)"
    server.stop()


def test_a_body_cut_short_is_400_and_never_reaches_the_app(served):
    """Half-closed before its Content-Length: 400 naming both sizes; nothing predicted."""
    with _holding(served.url, 1000, 10) as connection:
        connection.shutdown(socket.SHUT_WR)
        answer = connection.recv(4096)
    assert answer.startswith(b"HTTP/1.1 400 "), answer[:100]
    assert b"before the 1000 bytes its Content-Length announced" in answer


def test_workers_die_with_a_killed_master(tmp_path, trained_models):
    """SIGKILL of the master: no worker stays behind answering the public port."""
    from tests.support.diamonds import CLASSIFIER
    from tests.support.serving_process import start

    server = start(tmp_path / "models", tmp_path, "1.0.0", {CLASSIFIER: trained_models.pipeline})
    master = psutil.Process(server.master_pid())
    family = master.children()
    assert len(family) == 3, family  # two workers and the warm validator
    master.kill()
    server.process.wait(10)
    _, alive = psutil.wait_procs(family, timeout=10)
    assert not alive, alive


def test_the_admin_listener_answers_what_it_refuses_in_json(served):
    """Chunked body: 411; a Content-Length that is not digits: 400; never a traceback."""
    chunked = served.session.post(served.admin_url + "/-/reload", timeout=10,
                                  data=(part for part in [b"{}"]),
                                  headers={"Authorization": f"Bearer {served.token}"})
    assert chunked.status_code == 411 and chunked.json()["error"] == "length_required"
    status = _raw(served.admin_url, b"POST /-/reload HTTP/1.1\r\nHost: x\r\n"
                  b"Content-Length: \xc2\xb2\r\nConnection: close\r\n\r\n")
    assert status.startswith(b"HTTP/1.1 400"), status
    assert "Traceback" not in served.log_tail(200)


def test_metrics_answer_on_the_admin_and_metrics_ports_never_on_the_public_one(served):
    """The Service sends the public port to the world: /metrics is not there. Prometheus scrapes
    METRICS_PORT, which answers GET /metrics and nothing else (no admin path, no prediction)."""
    assert served.session.get(served.url + "/metrics", timeout=10).status_code == 404
    assert "serving_requests_total" in served.session.get(served.admin_url + "/metrics",
                                                          timeout=10).text
    scraped = requests.get(served.metrics_url + "/metrics", timeout=10)
    assert scraped.status_code == 200 and "serving_requests_total" in scraped.text
    auth = {"Authorization": f"Bearer {served.token}"}
    for method, path in (("POST", "/-/reload"), ("POST", "/-/validate"), ("GET", "/-/"),
                         ("GET", "/api/v1/model"), ("POST", "/metrics"),
                         ("GET", "/metrics/../-/reload")):
        refused = requests.request(method, served.metrics_url + path, headers=auth, json={},
                                   timeout=10)
        assert refused.status_code == 404, (method, path)
        assert refused.json()["error"] == "not_found"
