"""What both processes share, computed once: Comet's server root and the Bearer check."""

import base64
import json

import pytest

from common import bearer, comet_server


def _key(suffix: object) -> str:
    encoded = base64.b64encode(json.dumps(suffix).encode()).decode().rstrip("=")
    return f"abcdefghijklmnopqrstuvwxy*{encoded}"


@pytest.mark.parametrize("override,key,root", [
    ("http://127.0.0.1:8080/clientlib/", "plain", "http://127.0.0.1:8080"),
    (None, _key({"baseUrl": "https://comet.example:8443/clientlib/"}), "https://comet.example:8443"),
    (None, "plain", "https://www.comet.com"),
    ("http://override:1/", _key({"baseUrl": "https://carried/"}), "http://override:1"),
])
def test_the_server_root_is_the_override_else_the_keys_else_comets(override, key, root):
    """As the comet_ml SDK: only scheme://host:port; the sidecar and serving agree."""
    assert comet_server.server_root(override, key) == root
    assert comet_server.server_root_or_default(override, key) == root


def test_a_malformed_key_is_an_error_for_the_sidecar_and_comets_own_server_for_serving():
    """The sidecar refuses to start; serving's uploads go nowhere but Comet (the SDK refuses)."""
    for key in ("k*!!notbase64!!", _key({"baseUrl": "http://"})):
        with pytest.raises(ValueError):
            comet_server.server_root(None, key)
        assert comet_server.server_root_or_default(None, key) == comet_server.DEFAULT_SERVER


@pytest.mark.parametrize("header,token", [
    ("Bearer s3cret", "s3cret"), ("bearer s3cret", "s3cret"), ("BEARER s3cret ", "s3cret"),
    ("Basic s3cret", None), ("s3cret", None), ("", None), (None, None),
])
def test_the_bearer_scheme_is_case_insensitive(header, token):
    """RFC 7235: the scheme's case does not matter (the sidecar once required `Bearer`)."""
    assert bearer.bearer_token(header) == token


def test_holding_a_token_needs_an_equal_non_empty_one():
    """A wrong, missing or empty token never passes."""
    assert bearer.holds("bearer a", ["b", "a"])
    assert not bearer.holds("Bearer a", ["b"])
    assert not bearer.holds("Bearer ", [""])
    assert not bearer.holds(None, ["a"])
