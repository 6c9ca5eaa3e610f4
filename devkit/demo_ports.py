"""The demo's port check: one line per busy port, naming the flag (and make's form) to change it."""

from __future__ import annotations

import socket


def ports_in_use(ports: dict[str, int], under_make: bool = False) -> list[str]:
    """One line for each port, by its flag, that cannot be bound on 127.0.0.1."""
    busy = []
    for flag, port in ports.items():
        if not _bindable(port):
            spare = next((p for p in range(port + 1, min(port + 100, 65536))
                          if p not in ports.values() and _bindable(p)), "N")
            how = f"{flag} {spare}"
            busy.append(f"port {port} is in use; choose another with "
                        + (f"make demo DEMO_ARGS='{how}'" if under_make else how))
    return busy


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        # as the servers bind: a port left in TIME-WAIT by the last run is free to them
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True
