"""The decision's seal: only the pods of one Deployment, holding its DECISION_KEY, can make one.

Anyone allowed to update Leases in the namespace can write the annotation, so its text alone is
not a credential. The leader writes `hmac-sha256:<hex>:<json>`: an HMAC-SHA256 with the
Deployment's own key (a Secret key of its own, never the reload token) over the Lease's
namespace and name and the JSON text. A follower checks the seal before the JSON is parsed; a
decision copied from another Lease, or written without the key, is refused.

The same key gives the peer credential (`peer_token`): what a follower sends to the leader for
files and forwarded wake-ups, derived so that the reload token never leaves the pod.
"""

from __future__ import annotations

import hashlib
import hmac

from .decision import DecisionError

PREFIX = "hmac-sha256:"
_PEER_LABEL = b"registry-sync peer credential v1"


def _mac(key: bytes, binding: str, text: str) -> str:
    message = binding.encode() + b"\n" + text.encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def seal(text: str, key: bytes, binding: str) -> str:
    """The annotation value: the JSON text behind its MAC for this Lease (`binding`)."""
    return f"{PREFIX}{_mac(key, binding, text)}:{text}"


def unseal(value: str, key: bytes, binding: str) -> str:
    """The JSON text of a sealed value; DecisionError unless this Deployment's key made it."""
    if not key:
        raise DecisionError("no DECISION_KEY to check the decision with")
    if not isinstance(value, str) or not value.startswith(PREFIX):
        raise DecisionError("the decision is not sealed (no hmac-sha256: prefix)")
    mac, sep, text = value[len(PREFIX):].partition(":")
    if not sep or not hmac.compare_digest(mac.encode(), _mac(key, binding, text).encode()):
        raise DecisionError("the decision's seal does not match this Deployment's key")
    return text


def peer_token(key: bytes) -> str:
    """The credential replicas present to each other (files, forwarded wake-ups)."""
    return hmac.new(key, _PEER_LABEL, hashlib.sha256).hexdigest()
