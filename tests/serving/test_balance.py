"""Kept-alive connections are evened out between the front's workers (serving.front.balance)."""

from __future__ import annotations

import http.client
import os
import time
from collections import Counter

import psutil
import requests

from serving.front.balance import WorkerLoads

CONNECTIONS = 16  # hashed by the kernel alone, 16 land exactly 8/8 one time in five


def _per_worker(served, port: int) -> list[int]:
    """How many established connections to the public port each worker holds."""
    held = Counter()
    for pid in served.worker_pids():
        for connection in psutil.Process(pid).net_connections(kind="tcp"):
            if connection.status == psutil.CONN_ESTABLISHED and connection.laddr.port == port:
                held[pid] += 1
    return sorted(held[pid] for pid in served.worker_pids())


def _shed_so_far(served) -> float:
    """serving_connections_shed_total, summed over the workers (asked on a connection of its own,
    used once: never one the front would close)."""
    text = requests.get(served.url + "/metrics", timeout=5).text
    return next(float(line.split()[-1]) for line in text.splitlines()
                if line.startswith("serving_connections_shed_total "))


def test_kept_alive_connections_piled_on_one_worker_are_spread_evenly(served):
    """16 kept-alive clients: every answer 200, within seconds each worker holds 8, and each
    connection closed for it is counted."""
    shed_before = _shed_so_far(served)
    host, _, port = served.url.removeprefix("http://").rpartition(":")
    clients = [http.client.HTTPConnection(host, int(port), timeout=10)
               for _ in range(CONNECTIONS)]
    statuses: Counter[int] = Counter()
    closes = 0

    def round_of_requests() -> int:
        """One request on each connection; how many answers asked to close it."""
        asked = 0
        for client in clients:
            client.request("GET", "/healthz")  # a closed connection is opened again here
            response = response_of(client)
            statuses[response.status] += 1
            asked += response.getheader("connection", "").lower() == "close"
        return asked

    try:
        deadline, counts = time.monotonic() + 30, []
        while not (len(counts) == 2 and sum(counts) == CONNECTIONS and counts[1] - counts[0] <= 1):
            assert time.monotonic() < deadline, f"still {counts} after 30 s"
            closes += round_of_requests()  # any failure to answer raises here
            counts = _per_worker(served, int(port))
        settled = time.monotonic() + 1.5
        late = 0
        while time.monotonic() < settled:
            late += round_of_requests()
    finally:
        for client in clients:
            client.close()
    assert set(statuses) == {200}, statuses
    assert late == 0, "an even spread must not be disturbed"
    assert closes <= 4 * CONNECTIONS, f"{closes} connections closed to even out 16"
    assert _shed_so_far(served) - shed_before == closes


def response_of(client: http.client.HTTPConnection) -> http.client.HTTPResponse:
    """The whole answer read, so the connection can carry the next request."""
    response = client.getresponse()
    response.read()
    return response


def test_a_dead_workers_slot_is_taken_over_and_its_count_forgotten():
    """A replacement takes the slot of a worker that died; the dead one's count never counts
    as the least busy, which would make every live worker shed connections."""
    loads = WorkerLoads(slots=2)
    child = os.fork()
    if child == 0:
        os._exit(0)
    os.waitpid(child, 0)
    loads.cells[0], loads.cells[1] = child, 0  # a dead worker that held nothing
    loads.cells[2], loads.cells[3] = 1, 5  # pid 1, alive, holding 5
    loads.claim()
    assert loads.mine == 0 and loads.cells[0] == os.getpid()
    connections = [f"127.0.0.1:{40000 + number}" for number in range(9)]
    for connection in connections * 2:  # nine busy kept-alive connections
        loads.should_shed(connection)
    assert not loads.should_shed("127.0.0.1:50000")  # and one used once, never counted
    assert loads.cells[1] == 9
    verdicts = []
    for _ in range(2):  # 9 against 5 at two looks in a row: one connection goes
        loads.next_look = 0.0
        verdicts.append(loads.should_shed(connections[0]))
    assert verdicts == [False, True] and loads.cells[1] == 8
