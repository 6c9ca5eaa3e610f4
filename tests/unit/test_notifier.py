"""The validate protocol over real HTTP on 127.0.0.1: only a refused connection is "not up"."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from devkit.processes import free_port
from registry_sync.errors import ServingUnavailable, SnapshotRejected, Stopped
from registry_sync.hooks.notifier import NOT_LISTENING, ServingNotifier, Verdict


class ScriptedServing(ThreadingHTTPServer):
    """Answers /-/validate from a script of (status, body), or drops the connection on None."""

    def __init__(self, script: list[tuple[int, dict] | None]):
        self.script, self.tokens = list(script), []
        super().__init__(("127.0.0.1", 0), _Handler)


class _Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        self.server.tokens.append(self.headers["Authorization"])
        step = self.server.script.pop(0) if len(self.server.script) > 1 else self.server.script[0]
        if step is None:  # the validating worker died: connection dropped, no answer
            self.close_connection = True
            self.connection.close()
            return
        status, body = step
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def serving(request) -> Iterator[ScriptedServing]:
    server = ScriptedServing(request.param)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


def notifier(server: ScriptedServing | None, **options) -> ServingNotifier:
    port = server.server_address[1] if server else free_port()
    return ServingNotifier(f"http://127.0.0.1:{port}", options.pop("token", "t0ken"),
                           wait=options.pop("wait", lambda _s: False), **options)


RUNNING = (202, {"state": "running"})


@pytest.mark.parametrize("serving", [[RUNNING, RUNNING, (200, {"state": "accepted"})]],
                         indirect=True)
def test_running_is_polled_until_accepted_with_the_current_token(serving):
    tokens = iter(["first", "second", "third"])
    assert notifier(serving, token=lambda: next(tokens)).validate("s1") is Verdict.ACCEPTED
    assert serving.tokens == ["Bearer first", "Bearer second", "Bearer third"]


KILLED = (422, {"reason": "validator killed by signal 9 (SIGKILL); likely out of memory"})


@pytest.mark.parametrize("serving", [[RUNNING, KILLED]], indirect=True)
def test_a_validator_death_reported_by_serving_is_a_rejection(serving):
    with pytest.raises(SnapshotRejected, match="signal 9"):
        notifier(serving).validate("s1")


@pytest.mark.parametrize("serving", [[None], [(500, {"error": "worker died"})]], indirect=True)
def test_a_dropped_connection_or_a_5xx_is_unavailable_never_not_up(serving):
    with pytest.raises(ServingUnavailable):
        notifier(serving).validate("s1")


def test_only_nothing_listening_is_not_up():
    assert notifier(None).validate("s1") is Verdict.NOT_UP


def test_a_reload_with_nothing_listening_is_not_a_failure():
    """At start the sidecar publishes before serving listens: no error (serving reads
    `current` when it starts), while a dropped reload still is one."""
    assert notifier(None).reload("s1") == NOT_LISTENING


STARTING = (503, {"error": "serving_starting", "message": "serving's workers are starting"})


@pytest.mark.parametrize("serving", [[STARTING]], indirect=True)
def test_workers_still_starting_behind_the_admin_listener_are_not_up(serving):
    """The front's admin listener answers before its workers listen: not a failed pass."""
    assert notifier(serving).validate("s1") is Verdict.NOT_UP
    assert notifier(serving).reload("s1") == NOT_LISTENING


@pytest.mark.parametrize("serving", [[(503, {"error": "overloaded"})]], indirect=True)
def test_another_503_is_still_unavailable(serving):
    with pytest.raises(ServingUnavailable):
        notifier(serving).validate("s1")


@pytest.mark.parametrize("serving", [[None]], indirect=True)
def test_a_dropped_reload_is_unavailable(serving):
    with pytest.raises(ServingUnavailable):
        notifier(serving).reload("s1")


@pytest.mark.parametrize("serving", [[RUNNING]], indirect=True)
def test_polling_ends_at_the_deadline_and_at_a_stop(serving):
    now = [0.0]

    def wait(seconds: float) -> bool:
        now[0] += seconds
        return False

    with pytest.raises(ServingUnavailable, match="VALIDATION_DEADLINE=3s"):
        notifier(serving, validate_timeout=3, wait=wait, clock=lambda: now[0]).validate("s1")
    with pytest.raises(Stopped):
        notifier(serving, wait=lambda _s: True).validate("s1")
