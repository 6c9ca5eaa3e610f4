"""The demo's port check agrees with the servers: TIME-WAIT is free, a listener is busy."""

from __future__ import annotations

import socket

from devkit.demo_ports import ports_in_use


def _time_wait_port() -> int:
    """A loopback port whose server closed a connection first: left in TIME-WAIT, no listener."""
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", 0))
    server.listen()
    port = server.getsockname()[1]
    client = socket.create_connection(("127.0.0.1", port))
    accepted, _ = server.accept()
    accepted.close()  # the server side closes first, as a stopping server does
    client.recv(1)
    client.close()
    server.close()
    return port


def test_a_port_in_time_wait_is_free_as_it_is_to_the_servers():
    """Ctrl-C then `make demo` at once: the last run's connections must not block it."""
    port = _time_wait_port()
    without_reuse = socket.socket()
    try:
        without_reuse.bind(("127.0.0.1", port))
        blocked = False
    except OSError:
        blocked = True  # what the old check saw: "port in use" though nothing listens
    finally:
        without_reuse.close()
    assert blocked, "no TIME-WAIT left: the scenario did not happen"
    assert ports_in_use({"--port": port}) == []


def test_a_listening_port_is_busy_and_the_line_names_a_free_one_and_makes_form():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        [direct] = ports_in_use({"--port": port})
        [under_make] = ports_in_use({"--port": port}, under_make=True)
    spare = int(direct.rsplit(" ", 1)[1])
    assert direct == f"port {port} is in use; choose another with --port {spare}"
    assert under_make == f"port {port} is in use; choose another with " \
                         f"make demo DEMO_ARGS='--port {spare}'"
    assert spare != port
