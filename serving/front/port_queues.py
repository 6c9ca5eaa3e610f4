"""What the kernel holds for the public port: connections waiting to be accepted, and connections
whose clients do not take their answers. Read from /proc/net/tcp and tcp6 (the pod's network
namespace), so a worker sees every worker's listener, not only its own.

A listener's row counts its accept queue in rx_queue; a connection's row counts in tx_queue the
answer bytes its client has not acknowledged. A client that reads acknowledges its answer with
its next request (or within a delayed ACK, 40-200 ms); one that pipelines and never reads leaves
its answers queued there until the send deadline (serving.front.listener) closes it.
"""

from __future__ import annotations

import contextlib
import ipaddress
from collections.abc import Iterator
from dataclasses import dataclass

TABLES = ("/proc/net/tcp", "/proc/net/tcp6")
LISTEN, ESTABLISHED = "0A", "01"


@dataclass(frozen=True)
class Row:
    """One socket of the kernel's table: its state, addresses and queues."""

    state: str
    local_port: int
    remote: tuple[str, int]  # the peer's address (IPv4-mapped ones as IPv4) and port
    tx_queue: int
    rx_queue: int  # a listener's: connections waiting to be accepted
    inode: str


@dataclass(frozen=True)
class PortQueues:
    """The port's accept queues and its connections with answers not yet acknowledged."""

    waiting: int  # connections queued in the port's listeners, not yet accepted
    queued: frozenset[tuple[str, int]]  # clients (address, port) with answer bytes unacked


def read(port: int) -> PortQueues:
    """The port's queues as the kernel sees them now (empty if the tables cannot be read)."""
    waiting, queued = 0, set()
    for row in rows(port):
        if row.state == LISTEN:
            waiting += row.rx_queue
        elif row.state == ESTABLISHED and row.tx_queue > 0:
            queued.add(row.remote)
    return PortQueues(waiting=waiting, queued=frozenset(queued))


def rows(port: int) -> Iterator[Row]:
    """The kernel's TCP sockets whose local port is `port`, IPv4 and IPv6."""
    wanted = f":{port:04X} "
    for table in TABLES:
        with contextlib.suppress(OSError), open(table) as lines:
            for line in lines:
                if wanted not in line:  # most rows are other ports': skip them before splitting
                    continue
                fields = line.split()
                local, remote = fields[1], fields[2]
                if int(local.rpartition(":")[2], 16) != port:
                    continue
                tx_queue, _, rx_queue = fields[4].partition(":")
                yield Row(state=fields[3], local_port=port, remote=_address(remote),
                          tx_queue=int(tx_queue, 16), rx_queue=int(rx_queue, 16), inode=fields[9])


def client_key(client: str) -> tuple[str, int]:
    """A client as granian names it ("1.2.3.4:5", "[::1]:5") in the kernel tables' form."""
    host, _, port = client.rpartition(":")
    with contextlib.suppress(ValueError):
        return _normal(ipaddress.ip_address(host.strip("[]"))), int(port)
    return client, 0


def _address(text: str) -> tuple[str, int]:
    """A table's "hex address:hex port" (the address in 32-bit words of host order)."""
    hexed, _, port = text.partition(":")
    raw = bytes.fromhex(hexed)
    words = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))  # little-endian host
    return _normal(ipaddress.ip_address(words)), int(port, 16)


def _normal(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    """IPv4-mapped IPv6 addresses as their IPv4 (a dual-stack listener's view of v4 clients)."""
    mapped = getattr(address, "ipv4_mapped", None)
    return str(mapped or address)
