"""Hostile slow HTTP clients on loopback, and when the server hung up on each of them.

    with SlowClients("127.0.0.1", port, count=200, seconds=30) as slow:
        ...                                 # run a normal load meanwhile
    slow.open_count(), slow.closed_after()  # who is still held; how long each lasted

Three kinds, as a slow or hostile network produces them: `headers` sends its request headers
one byte at a time, `body` sends complete headers announcing a 64 KiB body and then trickles
it, `idle` connects and sends nothing. One thread drives every socket (non-blocking, one byte
per connection per `interval`), records when the server closed each, and stops by itself after
`seconds`: it never outlives its bound, and closes every socket it opened.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import threading
import time
from dataclasses import dataclass

KINDS = ("headers", "body", "idle")
BODY_BYTES = 64 * 1024


def _preamble(kind: str, host: str, port: int) -> bytes:
    """What a client of this kind would send in full (it never gets there)."""
    if kind == "idle":
        return b""
    head = (f"POST /api/v1/predict HTTP/1.1\r\nHost: {host}:{port}\r\n"
            "Content-Type: application/json\r\nX-Slow-Padding: " + "a" * 4096 + "\r\n")
    if kind == "headers":
        return head.encode()
    return (head + f"Content-Length: {BODY_BYTES}\r\n\r\n").encode() + b" " * BODY_BYTES


@dataclass
class SlowConnection:
    """One slow client: its kind, socket, what it still has to send, and when it was closed."""

    kind: str
    sock: socket.socket
    pending: bytes
    opened: float
    closed: float | None = None
    sent: int = 0


class SlowClients:
    """`count` connections, the kinds in turn, trickled until closed or `seconds` pass."""

    def __init__(self, host: str, port: int, count: int = 200, seconds: float = 30.0,
                 interval: float = 0.5):
        self.host, self.port, self.count = host, port, count
        self.seconds, self.interval = seconds, interval
        self.connections: list[SlowConnection] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="slow-clients")

    def __enter__(self) -> SlowClients:
        for n in range(self.count):
            self.connections.append(self._open(KINDS[n % len(KINDS)]))
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop trickling and close every socket still open."""
        self._stop.set()
        self._thread.join(self.interval + 5)
        for conn in self.connections:
            with contextlib.suppress(OSError):
                conn.sock.close()

    def _open(self, kind: str) -> SlowConnection:
        sock = socket.create_connection((self.host, self.port), timeout=10)
        # Headers go out whole for `body` (they are not the slow part); the body drips.
        pending = _preamble(kind, self.host, self.port)
        if kind == "body":
            split = pending.index(b"\r\n\r\n") + 4
            sock.sendall(pending[:split])
            pending = pending[split:]
        sock.setblocking(False)
        return SlowConnection(kind, sock, pending, time.monotonic())

    def _run(self) -> None:
        deadline = time.monotonic() + self.seconds
        with selectors.DefaultSelector() as selector:
            for conn in self.connections:
                selector.register(conn.sock, selectors.EVENT_READ, conn)
            while not self._stop.is_set() and time.monotonic() < deadline:
                for key, _ in selector.select(timeout=0):
                    self._on_readable(key.data, selector)
                for conn in self.connections:
                    if conn.closed is None:
                        self._trickle(conn, selector)
                self._stop.wait(self.interval)

    def _on_readable(self, conn: SlowConnection, selector: selectors.BaseSelector) -> None:
        """The server answered (an error page) or hung up: either way it let go of us."""
        try:
            data = conn.sock.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._closed(conn, selector)

    def _trickle(self, conn: SlowConnection, selector: selectors.BaseSelector) -> None:
        if not conn.pending:
            return
        try:
            conn.sent += conn.sock.send(conn.pending[:1])
            conn.pending = conn.pending[1:]
        except BlockingIOError:
            pass
        except OSError:
            self._closed(conn, selector)

    def _closed(self, conn: SlowConnection, selector: selectors.BaseSelector) -> None:
        conn.closed = time.monotonic()
        selector.unregister(conn.sock)

    def open_count(self) -> int:
        """Connections the server has not closed yet."""
        return sum(1 for c in self.connections if c.closed is None)

    def closed_after(self, kind: str | None = None) -> list[float]:
        """Seconds from connect to the server's close, for each closed connection of a kind."""
        return [c.closed - c.opened for c in self.connections
                if c.closed is not None and kind in (None, c.kind)]
