"""Bounds on what a client that never reads its answers may hold: set on the worker's listener.

granian builds each worker's listening socket in Rust (SO_REUSEPORT, one per worker) and offers
no write deadline: a client that stops reading (a 4 KiB receive window, then zero) kept its
connection, and its slot among FRONT_MAX_CONNECTIONS, for ever. Linux closes such a connection
for us: TCP_USER_TIMEOUT bounds how long sent data may stay unacknowledged, zero-window probes
included (measured on this kernel: a connection whose peer never reads fails with ETIMEDOUT
0.27 s after its user timeout; without it, never). SO_SNDBUF fixes the kernel's send queue of each
connection (else autotuned up to tcp_wmem's 4 MiB). Accepted sockets inherit both from the
listener, so the options are set there, once, as soon as granian has made it.
"""

from __future__ import annotations

import contextlib
import os
import socket
import stat
import threading
import time
from dataclasses import dataclass

from model_contract.logs import EventLogger

from . import port_queues

log = EventLogger("serving.front")
# The kernel doubles it: 64 KiB of queued answer per connection, several whole batch answers.
SEND_BUFFER_BYTES = 32 * 1024
FIND_SECONDS = 30.0  # granian makes the listener once the app is built: well within this


@dataclass(frozen=True)
class ListenerOptions:
    """What every connection accepted on the public port inherits."""

    port: int
    send_timeout: float  # seconds sent data may stay unacknowledged (TCP_USER_TIMEOUT)
    send_buffer: int = SEND_BUFFER_BYTES


def apply_when_listening(options: ListenerOptions) -> None:
    """On a thread: wait for this worker's listener on the port, then set the options on it."""
    threading.Thread(target=_apply, args=(options,), name="listener-options",
                     daemon=True).start()


def _apply(options: ListenerOptions) -> None:
    deadline = time.monotonic() + FIND_SECONDS
    while time.monotonic() < deadline:
        found = listening_sockets(options.port)
        if found:
            for sock in found:
                with sock:
                    set_options(sock, options)
            log.info("listener_bounded", pid=os.getpid(), port=options.port,
                     send_timeout=options.send_timeout, send_buffer=options.send_buffer)
            return
        time.sleep(0.005)
    log.error("listener_not_bounded", pid=os.getpid(), port=options.port,
              reason=f"no listening socket on the port within {FIND_SECONDS:g} s")


def set_options(sock: socket.socket, options: ListenerOptions) -> None:
    """The send deadline and send queue bound, on a socket its accepted ones inherit from."""
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT,
                    int(options.send_timeout * 1000))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, options.send_buffer)


def listening_sockets(port: int) -> list[socket.socket]:
    """This process's TCP sockets listening on the port (duplicates: close them)."""
    found = []
    for name in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError, ValueError):
            if not stat.S_ISSOCK(os.fstat(int(name)).st_mode):
                continue
            sock = socket.socket(fileno=os.dup(int(name)))
            if sock.type == socket.SOCK_STREAM and \
                    sock.family in (socket.AF_INET, socket.AF_INET6) and \
                    sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN) and \
                    sock.getsockname()[1] == port:
                found.append(sock)
            else:
                sock.close()
    return found


def is_listening(pid: int, port: int) -> bool:
    """Whether the process holds a TCP socket listening on the port (read from /proc)."""
    inodes = set()
    try:
        for name in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                target = os.readlink(f"/proc/{pid}/fd/{name}")
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
    except OSError:
        return False
    return any(row.state == port_queues.LISTEN and row.inode in inodes
               for row in port_queues.rows(port))
