"""Values from the registry that could break the loop: Retry-After hints, keys with a server."""

import base64
import json
import math

import pytest

from model_contract import api_key
from registry_sync.registries.comet.client import MAX_RETRY_HINT, retry_after_seconds


@pytest.mark.parametrize("value", ["99999999999", "1e10", "inf", "Infinity", "1e400"])
def test_huge_retry_after_is_capped_at_a_day_never_infinite(value):
    assert retry_after_seconds({"Retry-After": value}) == MAX_RETRY_HINT


@pytest.mark.parametrize("value", ["nan", "-nan", "", "soon", "1,5", "\x00", "9" * 500,
                                   "Wed, 99 Oct 2026 99:99:99 GMT"])
def test_unreadable_retry_after_is_ignored_without_raising(value):
    assert retry_after_seconds({"Retry-After": value}) is None


def test_an_unreadable_retry_after_falls_back_to_the_custom_header():
    hint = retry_after_seconds({"Retry-After": "nan", "Retry-After-Custom": "2"})
    assert hint == 2.0 and math.isfinite(hint)


def _key(suffix: object) -> str:
    encoded = base64.b64encode(json.dumps(suffix).encode()).decode().rstrip("=")
    return f"abcdefghijklmnopqrstuvwxy*{encoded}"


def test_key_with_base_url_names_its_server_and_is_sent_whole():
    key = _key({"baseUrl": "http://127.0.0.1:9999/"})
    assert api_key.base_url(key) == "http://127.0.0.1:9999/"
    assert api_key.key_to_send(key) == key


def test_plain_key_and_trailing_star_carry_no_server():
    assert api_key.base_url("plain-key") is None
    assert api_key.base_url("plain-key*") is None
    assert api_key.key_to_send("plain-key*") == "plain-key"


@pytest.mark.parametrize("raw", ["k*!!notbase64!!", "k*" + base64.b64encode(b"[1]").decode(),
                                 "k*a*b", _key({"baseUrl": "ftp://x"}), _key({"baseUrl": 3})])
def test_malformed_suffix_is_refused(raw):
    with pytest.raises(api_key.MalformedKey):
        api_key.base_url(raw)


def test_the_demo_key_names_the_demo_registry():
    from devkit import demo
    from registry_sync.registries.comet.settings import server_url

    key = demo.key_naming("http://127.0.0.1:8091")
    assert server_url(None, key, "COMET_API_KEY") == "http://127.0.0.1:8091"
