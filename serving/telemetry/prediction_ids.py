"""Prediction ids that prove which answer they name: a time, a nonce and a tag over the version.

    <8 hex: issue time, seconds since the epoch><12 hex: random><12 hex: keyed BLAKE2s tag>

32 hex digits (a batch's rows add -<index>), as the ids were before they were signed. The tag
covers the time, the nonce and the version that answered, under a key only serving holds:
derived from the reload token when there is one (so every replica of a Deployment verifies the
ids of the others), else drawn at import by the front's master and inherited by its workers.
POST /api/v1/labels accepts only ids that verify for the version the label names, younger than
LABELS_MAX_AGE: an id cannot be made up, nor moved to another version.
"""

from __future__ import annotations

import hashlib
import hmac
import random
import secrets
import time
from collections.abc import Callable

TAG_BYTES = 6  # 48 bits: at LABELS_PER_SECOND, a guess lands once in millions of years
KEY_PERSON = b"prediction-ids"  # domain separation: this key is not the token
CLOCK_SKEW = 300.0  # seconds an id may seem to come from the future (replicas' clocks)
_DRAWN = secrets.token_bytes(32)  # drawn where this module is first imported: the master


def key_from(token: str | None) -> bytes:
    """The signing key: derived from the reload token, else this pod's drawn key."""
    if not token:
        return _DRAWN
    return hashlib.blake2b(token.encode(), digest_size=32, person=KEY_PERSON).digest()


class PredictionIds:
    """Issues and checks signed prediction ids (about 1 us more than 16 random bytes)."""

    def __init__(self, key: bytes, max_age: float, clock: Callable[[], float] = time.time):
        self.max_age, self._clock = max_age, clock
        self._mac = hashlib.blake2s(key=key, digest_size=TAG_BYTES)  # copied per id: no re-key

    def issue(self, version: str) -> str:
        """A fresh id for an answer of this version."""
        # The nonce need not be secret, only unique: the tag's key is what cannot be guessed.
        head = ((int(self._clock()) & 0xFFFFFFFF) << 48 | random.getrandbits(48)).to_bytes(10,
                                                                                         "big")
        return (head + self._tag(head, version)).hex()

    def refusal(self, prediction_id: str, version: str) -> str | None:
        """None if this service issued the id for this version within max_age; else why not."""
        try:
            raw = bytes.fromhex(prediction_id[:32])
        except ValueError:
            raw = b""
        head, tag = raw[:10], raw[10:]
        if len(tag) != TAG_BYTES or not hmac.compare_digest(self._tag(head, version), tag):
            return f"was not issued by this service for version {version}"
        age = self._clock() - int.from_bytes(head[:4], "big")
        if age > self.max_age:
            return f"is older than LABELS_MAX_AGE ({self.max_age:g} s)"
        if age < -CLOCK_SKEW:
            return f"was not issued by this service for version {version}"
        return None

    def _tag(self, head: bytes, version: str) -> bytes:
        mac = self._mac.copy()
        mac.update(head + version.encode("utf-8", "surrogatepass"))
        return mac.digest()
