"""Hostile clients that try to make the front hold resources for them, on loopback.

    with SlowReaders("127.0.0.1", port, count=128) as readers:   # pipeline, never read
        ...
        readers.held()                                           # not yet let go by the server

    with HeavySenders("127.0.0.1", port, plan) as senders:       # large heads and bodies, stall
        senders.wait_sent(20)

A slow reader asks for its receive window to be 4 KiB, pipelines `requests` GETs of the page
(about 7 KiB each) and never reads: the answers fill its window, then the server's send queue.
A heavy sender sends a head padded to `head_bytes` announcing `announced` bytes of body, sends
`sent` of them and stalls. Both only open, send and close sockets; the server letting go of one is
seen in the kernel's state of the socket (TCP_INFO: closed, or the peer's FIN), never by reading
the answers it was sent. Every socket is closed on exit.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path

TCP_STATES_HELD = {"01", "08"}  # ESTABLISHED, CLOSE_WAIT: the server's side still open


def server_held(server_port: int, sockets: list[socket.socket]) -> int:
    """How many of these client sockets the server's side (accepted or queued) still holds."""
    ports = set()
    for sock in sockets:
        with contextlib.suppress(OSError):
            ports.add(sock.getsockname()[1])
    held = 0
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, remote, state = line.split()[1:4]
        if int(local.rpartition(":")[2], 16) == server_port and state in TCP_STATES_HELD and \
                int(remote.rpartition(":")[2], 16) in ports:
            held += 1
    return held


def _connect(host: str, port: int, receive_buffer: int | None = None) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if receive_buffer is not None:  # before connect: it sets the window the server sees
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
    sock.settimeout(10)
    sock.connect((host, port))
    return sock


class SlowReaders:
    """`count` connections that pipeline GET / and never read the answers."""

    def __init__(self, host: str, port: int, count: int, requests: int = 64):
        self.host, self.port, self.count, self.requests = host, port, count, requests
        self.sockets: list[socket.socket] = []

    def __enter__(self) -> SlowReaders:
        request = f"GET / HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n\r\n".encode()
        for _ in range(self.count):
            sock = _connect(self.host, self.port, receive_buffer=4096)
            sock.sendall(request * self.requests)
            self.sockets.append(sock)
        return self

    def __exit__(self, *exc_info: object) -> None:
        for sock in self.sockets:
            sock.close()

    def held(self) -> int:
        """Connections the server has not let go of yet."""
        return server_held(self.port, self.sockets)


@dataclass(frozen=True)
class Heavy:
    """One kind of heavy sender: how many, how large a head, how much body announced and sent."""

    count: int
    head_bytes: int
    announced: int
    sent: int


@dataclass
class _Sending:
    sock: socket.socket
    pending: memoryview


class HeavySenders:
    """Connections of each kind in `plan`, sending as fast as the server takes, then stalling."""

    def __init__(self, host: str, port: int, plan: list[Heavy], seconds: float = 30.0):
        self.host, self.port, self.plan, self.seconds = host, port, plan, seconds
        self.sending: list[_Sending] = []
        self.done = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="heavy-senders", daemon=True)

    def __enter__(self) -> HeavySenders:
        for kind in self.plan:
            payload = self._payload(kind)
            for _ in range(kind.count):
                sock = _connect(self.host, self.port)
                sock.setblocking(False)
                self.sending.append(_Sending(sock, memoryview(payload)))
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(10)
        for sending in self.sending:
            sending.sock.close()

    def _payload(self, kind: Heavy) -> bytes:
        head = (f"POST /api/v1/predict HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {kind.announced}\r\n")
        padding = max(0, kind.head_bytes - len(head) - len("X-Pad: \r\n\r\n"))
        return (head + "X-Pad: " + "a" * padding + "\r\n\r\n").encode() + b" " * kind.sent

    def _run(self) -> None:
        deadline = time.monotonic() + self.seconds
        with selectors.DefaultSelector() as selector:
            for sending in self.sending:
                selector.register(sending.sock, selectors.EVENT_WRITE, sending)
            while selector.get_map() and not self._stop.is_set() and \
                    time.monotonic() < deadline:
                for key, _ in selector.select(timeout=0.2):
                    self._send(key.data, selector)
        self.done.set()

    def _send(self, sending: _Sending, selector: selectors.BaseSelector) -> None:
        try:
            sent = sending.sock.send(sending.pending[:256 * 1024])
        except BlockingIOError:
            return
        except OSError:  # the server refused (431, 503) and closed: nothing more to send
            sent = len(sending.pending)
        sending.pending = sending.pending[sent:]
        if not sending.pending:
            with contextlib.suppress(KeyError, ValueError):
                selector.unregister(sending.sock)

    def wait_sent(self, timeout: float) -> bool:
        """Wait until every sender has sent all it meant to (or was refused); whether so."""
        return self.done.wait(timeout)

    def held(self) -> int:
        """Connections the server has not let go of yet."""
        return server_held(self.port, [sending.sock for sending in self.sending])
