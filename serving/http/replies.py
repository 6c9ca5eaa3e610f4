"""A prediction's answer before a framework writes it: what both request paths send."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from flask import Response

JSON = "application/json"


@dataclass(frozen=True)
class Reply:
    """A 200 answer (JSON unless said): its bytes, its headers, and what runs once it is sent."""

    body: bytes
    headers: list[tuple[str, str]]
    after: Callable[[], None]
    content_type: str = JSON

    def wsgi_headers(self) -> list[tuple[str, str]]:
        """The headers as Flask sends this answer (see flask_response), in its order."""
        return [*self.headers, ("Content-Type", self.content_type),
                ("Content-Length", str(len(self.body)))]


def flask_response(reply: Reply) -> Response:
    """The reply as a Flask response (content_type and a list: werkzeug neither derives a
    charset nor copies a dict, ~5 us); its `after` runs once the answer is sent."""
    response = Response(reply.body, content_type=reply.content_type, headers=reply.headers)
    response.call_on_close(reply.after)
    return response
