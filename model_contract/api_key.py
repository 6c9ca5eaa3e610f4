"""Comet API keys that carry their server: `<key>*<base64 of {"baseUrl": ...}>`.

Parsed as comet_ml 3.58.8 does (`comet_ml/api_key/comet_api_key.py`): one `*` splits the key
from a base64 JSON object (padding optional); `baseUrl` in it names the server. The whole raw
key is still what goes into `Authorization`. A trailing `*` with nothing after it is dropped,
as the SDK does. Anything else after `*` is an error naming the variable, never the key.
"""

from __future__ import annotations

import base64
import binascii
import json

DELIMITER = "*"
DEFAULT_SERVER = "https://www.comet.com"  # not www.comet.ml: its redirect drops the key


class MalformedKey(ValueError):
    """The part of a key after `*` is not base64 JSON with a usable baseUrl."""


def key_to_send(raw: str) -> str:
    """The key as the SDK sends it: whole, except a trailing lone `*` is dropped."""
    head, sep, tail = raw.partition(DELIMITER)
    return head if sep and not tail else raw


def base_url(raw: str) -> str | None:
    """The server a key names in its suffix, or None when it has no suffix."""
    head, sep, tail = raw.partition(DELIMITER)
    if not sep or not tail:
        return None
    if DELIMITER in tail or not head:
        raise MalformedKey("a key and one '*'-separated suffix")
    try:
        attributes = json.loads(base64.b64decode(tail + "=" * (-len(tail) % 4), validate=True))
    except (binascii.Error, ValueError):
        raise MalformedKey("a suffix after '*' that is base64 of a JSON object") from None
    if not isinstance(attributes, dict):
        raise MalformedKey("a suffix after '*' that is base64 of a JSON object")
    url = attributes.get("baseUrl")
    if url is None:
        return None
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise MalformedKey("a baseUrl in the key's suffix that is an http(s) URL")
    return url
