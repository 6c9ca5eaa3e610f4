"""A threading HTTP server that serves a bounded number of connections at once.

The stdlib's ThreadingHTTPServer starts a thread per connection and keeps it as long as the
client holds the connection open: a thousand idle clients are a thousand threads and
descriptors. Here a connection beyond `max_connections` is answered `503` and closed at once
(its descriptor lives for microseconds), and the handler's `timeout` closes idle ones.
"""

from __future__ import annotations

import socket
import threading
from http.server import ThreadingHTTPServer

from model_contract import logs

log = logs.get(__name__)

BUSY = (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\n"
        b"Content-Length: 5\r\nConnection: close\r\nRetry-After: 1\r\n\r\nbusy\n")


class BoundedHTTPServer(ThreadingHTTPServer):
    """At most `max_connections` handled at once; the others refused with 503 at once."""

    daemon_threads = True
    request_queue_size = 128

    def __init__(self, address, handler, max_connections: int):
        self._slots = threading.BoundedSemaphore(max_connections)
        self.refused = 0
        super().__init__(address, handler)

    def process_request(self, request, client_address) -> None:
        """Hand the connection to a thread if a slot is free, else refuse it now."""
        if not self._slots.acquire(blocking=False):
            self.refused += 1
            self._refuse(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request, client_address) -> None:
        """Serve, then give the slot back whatever happened."""
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def handle_error(self, request, client_address) -> None:
        """A client gone or too slow is routine: one quiet line, no traceback."""
        log.debug("sidecar_http_connection_error")

    def _refuse(self, request: socket.socket) -> None:
        try:
            request.setblocking(False)
            request.send(BUSY)
        except OSError:
            pass  # the client is gone or its window full: closing is the answer
        self.shutdown_request(request)
