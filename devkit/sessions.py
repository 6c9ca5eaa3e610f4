"""HTTP sessions the tests and the benchmarks share."""

from __future__ import annotations

import requests


def spreading_session() -> requests.Session:
    """A session whose requests each take a new connection, so they spread over the workers.

    A kept-alive connection stays with the worker that accepted it; a test that asks until
    every worker has answered needs the kernel to hand each request to any of them.
    """
    session = requests.Session()
    session.headers["Connection"] = "close"
    return session
