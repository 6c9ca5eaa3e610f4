"""The sidecar's wake-up call: `POST /-/poll-now` with the shared token as a Bearer token.

Serving sends it when Comet's webhook is accepted; a follower sidecar passes it on to the
leader. urllib, not requests: the serving image installs no HTTP client library.
"""

from __future__ import annotations

from urllib.error import URLError
from urllib.request import Request, urlopen

FAILURES = (URLError, OSError, ValueError)  # refused, timed out, an error status, a bad URL


def wake(sidecar_url: str, token: str, timeout: float) -> int:
    """Ask the sidecar at `sidecar_url` to poll now; the answer's status (else FAILURES)."""
    call = Request(f"{sidecar_url}/-/poll-now", data=b"", method="POST",  # noqa: S310 - http(s)
                   headers={"Authorization": f"Bearer {token}"})
    with urlopen(call, timeout=timeout) as answer:  # noqa: S310 - the callers' URLs are http(s)
        return answer.status
