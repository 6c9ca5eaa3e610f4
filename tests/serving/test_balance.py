"""Kept-alive connections are evened out between the front's workers (serving.front.balance)."""

from __future__ import annotations

import contextlib
import http.client
import os
import socket
import time
from collections import Counter

import psutil
import requests

from serving.front import balance
from serving.front.balance import WorkerLoads

CONNECTIONS = 16  # hashed by the kernel alone, 16 land exactly 8/8 one time in five


class Clients:
    """Kept-alive HTTP connections to the front, each sending one request per round."""

    def __init__(self, url: str, count: int):
        host, _, port = url.removeprefix("http://").rpartition(":")
        self.port = int(port)
        self.connections = [http.client.HTTPConnection(host, self.port, timeout=10)
                            for _ in range(count)]
        self.statuses: Counter[int] = Counter()

    def round(self) -> int:
        """One request on each connection; how many answers asked to close it."""
        asked = 0
        for connection in self.connections:
            connection.request("GET", "/healthz")  # a closed connection is opened again here
            response = connection.getresponse()
            response.read()
            self.statuses[response.status] += 1
            asked += response.getheader("connection", "").lower() == "close"
        return asked

    def per_worker(self, served) -> list[int]:
        """How many of these connections each worker holds (others to the port are not ours)."""
        ours = {c.sock.getsockname()[1] for c in self.connections if c.sock is not None}
        held = Counter()
        for pid in served.worker_pids():
            for connection in psutil.Process(pid).net_connections(kind="tcp"):
                if connection.status == psutil.CONN_ESTABLISHED and \
                        connection.laddr.port == self.port and connection.raddr.port in ours:
                    held[pid] += 1
        return sorted(held[pid] for pid in served.worker_pids())

    def close(self) -> None:
        for connection in self.connections:
            connection.close()


def _even(counts: list[int]) -> bool:
    return len(counts) == 2 and sum(counts) == CONNECTIONS and counts[1] - counts[0] <= 1


def _shed_so_far(served) -> float:
    """serving_connections_shed_total, summed over the workers (asked on a connection of its own,
    used once: never one the front would close)."""
    text = requests.get(served.admin_url + "/metrics", timeout=5).text
    return next(float(line.split()[-1]) for line in text.splitlines()
                if line.startswith("serving_connections_shed_total "))


def _uneven_clients(served) -> Clients:
    """16 kept-alive clients that the kernel's hash placed unevenly (tried afresh until so)."""
    for _ in range(20):
        clients = Clients(served.url, CONNECTIONS)
        clients.round()
        if not _even(clients.per_worker(served)):
            return clients
        clients.close()
    raise AssertionError("20 sets of 16 connections all landed evenly")


def test_kept_alive_connections_piled_on_one_worker_are_spread_evenly(served):
    """16 kept-alive clients placed unevenly: every answer 200, within seconds each worker holds
    8 and then nothing moves; each connection closed for it is counted."""
    shed_before = _shed_so_far(served)
    clients = _uneven_clients(served)
    first = clients.per_worker(served)
    closes = 0
    try:
        deadline, counts, quiet = time.monotonic() + 30, first, False
        while not (_even(counts) and quiet):
            assert time.monotonic() < deadline, f"still {counts} after 30 s (from {first})"
            shed = clients.round()  # any failure to answer raises here
            closes += shed
            quiet = shed == 0
            counts = clients.per_worker(served)
        settled = time.monotonic() + 1.5
        late = 0
        while time.monotonic() < settled:
            late += clients.round()
        final = clients.per_worker(served)
    finally:
        clients.close()
    assert set(clients.statuses) == {200}, clients.statuses
    assert closes > 0, f"spread {first} evenly without closing a connection"
    assert late == 0 and _even(final), f"an even spread was disturbed: {late} closes, {final}"
    assert closes <= 4 * CONNECTIONS, f"{closes} connections closed to even out {first}"
    assert _shed_so_far(served) - shed_before == closes


def test_a_dead_workers_slot_is_taken_over_and_its_count_forgotten(monkeypatch):
    """A replacement takes the slot of a worker that died; the dead one's count never counts
    as the least busy, which would make every live worker shed connections."""
    clock = [100.0]
    monkeypatch.setattr(balance.time, "monotonic", lambda: clock[0])
    loads = WorkerLoads(slots=3)
    dead = []
    for _ in range(2):
        child = os.fork()
        if child == 0:
            os._exit(0)
        os.waitpid(child, 0)
        dead.append(child)
    loads.cells[0], loads.cells[1] = dead[0], 0  # a dead worker that held nothing
    loads.cells[2], loads.cells[3] = 1, 5  # pid 1, alive
    assert loads.claim()
    assert loads.mine == 0 and loads.cells[0] == os.getpid()
    loads.cells[4], loads.cells[5] = dead[1], 0  # a worker that died after this one's claim
    connections = [f"127.0.0.1:{40000 + number}" for number in range(9)]
    for connection in connections * 2:  # nine busy kept-alive connections
        loads.should_shed(connection)
    assert not loads.should_shed("127.0.0.1:50000")  # and one used once, never counted
    assert loads.cells[1] == 9

    def look() -> bool:
        clock[0] += 0.05
        return loads.should_shed(connections[0])

    loads.cells[3] = 8  # 9 against 8 is even enough; against the dead worker's 0 it would not be
    assert [look(), look(), look()] == [False, False, False]
    loads.cells[3] = 5  # 9 against 5 at two looks in a row: one connection goes, then a pause
    assert [look(), look()] == [False, True] and loads.cells[1] == 8
    clock[0] += 0.01
    assert not loads.should_shed(connections[1])


def test_a_refused_slots_lock_leaves_the_worker_serving_without_the_balance(monkeypatch):
    """The slots' record lock refused (ENOLCK): claim() is False (logged), never a crash."""
    import errno
    import fcntl

    def refuse(fd, cmd, *args):
        raise OSError(errno.ENOLCK, "No locks available")

    loads = WorkerLoads(slots=2)
    monkeypatch.setattr(fcntl, "lockf", refuse)
    assert loads.claim() is False and loads.mine is None
    assert loads.should_shed("127.0.0.1:5000") is False


def _pair(listener: socket.socket, receive_buffer: int | None = None):
    """A client connection to `listener` and the server's side of it, accepted."""
    client = socket.socket()
    if receive_buffer is not None:
        client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
    client.connect(listener.getsockname())
    server, _ = listener.accept()
    return client, server


def test_clients_that_never_read_count_never_and_a_full_accept_queue_stops_sheds(monkeypatch):
    """Connections whose answers wait unread in the kernel (pipelining clients that never read)
    stop counting at the next shed decision, and none is ever shed; while connections wait in the
    port's accept queue nothing is shed (the reconnection would wait behind them); once the queue
    is empty, a crowded worker sheds a connection that reads. Real sockets on loopback."""
    clock = [100.0]
    monkeypatch.setattr(balance.time, "monotonic", lambda: clock[0])
    monkeypatch.setattr(balance, "WINDOW", 1000.0)  # the fake clock jumps: nothing goes quiet
    with socket.create_server(("127.0.0.1", 0), backlog=16) as listener:
        loads = WorkerLoads(slots=2, port=listener.getsockname()[1])
        assert loads.claim()
        loads.cells[2], loads.cells[3] = 1, 0  # another worker (pid 1, alive) with nothing
        readers = [_pair(listener) for _ in range(3)]
        deaf = [_pair(listener, receive_buffer=4096) for _ in range(4)]
        for _, server in deaf:  # answers the client never reads: the send queue fills
            server.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                while True:
                    server.send(b"x" * 65536)
        name = {id(client): f"127.0.0.1:{client.getsockname()[1]}"
                for client, _ in readers + deaf}
        for client, _ in (readers + deaf) * 2:  # seven busy kept-alive connections
            clock[0] += 0.001
            loads.should_shed(name[id(client)])

        def look(client: socket.socket) -> bool:
            clock[0] += 0.2
            return loads.should_shed(name[id(client)])

        assert loads.cells[1] == 7
        # Its request came behind answers still queued: it never read them, and is not closed.
        assert [look(deaf[0][0]), look(deaf[0][0])] == [False, False]
        assert loads.cells[1] == 6
        waiting = socket.create_connection(listener.getsockname())  # never accepted yet
        assert [look(readers[0][0]), look(readers[0][0])] == [False, False], \
            "shed while a connection waited in the accept queue"
        # The other three: queued at two looks, no request in between.
        assert loads.cells[1] == 3, "the four that never read still count"
        listener.accept()[0].close()
        assert [look(readers[0][0]), look(readers[0][0])] == [False, True]
        assert loads.cells[1] == 2
        assert [look(deaf[1][0]) for _ in range(4)] == [False] * 4
        for sock in [waiting, *(s for pair in readers + deaf for s in pair)]:
            sock.close()
