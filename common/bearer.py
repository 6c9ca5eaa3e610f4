"""The Bearer check, one parse for every endpoint that takes a shared token (RFC 6750)."""

from __future__ import annotations

import hmac


def bearer_token(header: str | None) -> str | None:
    """The token of `Authorization: Bearer <token>` (scheme case-insensitive), else None."""
    scheme, _, token = (header or "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else None


def holds(header: str | None, tokens: list[str]) -> bool:
    """True when the header carries one of the tokens, compared in constant time."""
    sent = bearer_token(header)
    return sent is not None and any(
        hmac.compare_digest(sent.encode(), token.encode()) for token in tokens if token)
