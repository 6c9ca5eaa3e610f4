"""Fault rules and request counts, observed by a plain HTTP client."""

from __future__ import annotations

import http.client
import socket
import time

import pytest
import requests

from devkit.registry import API, unique_name, zip_bytes

BIG = zip_bytes({"weights.bin": bytes(range(256)) * 4096})


@pytest.fixture
def model(local_registry) -> str:
    """A model with one version whose zip is about a megabyte."""
    name = unique_name()
    local_registry.register_zip(name, "1.0.0", BIG)
    return name


def _download(registry, name):
    return registry.get("registry-model/item/download", workspaceName=registry.workspace,
                        modelName=name, version="1.0.0")


def test_status_for_the_next_n_requests_then_normal(local_registry, model):
    """A rule with status and times answers that status N times, then expires."""
    local_registry.add_fault(path="item/download", status=500, times=2)
    codes = [_download(local_registry, model).status_code for _ in range(3)]
    assert codes == [500, 500, 200]
    assert local_registry.faults() == []


def test_429_with_retry_after(local_registry, model):
    """A 429 rule can carry Retry-After, in Comet's error body."""
    local_registry.add_fault(path="registry-model/details", status=429, retry_after=3, times=1)
    answer = local_registry.get("registry-model/details", workspaceName=local_registry.workspace,
                                modelName=model)
    assert answer.status_code == 429 and answer.headers["Retry-After"] == "3"
    assert "Retry-After-Custom" not in answer.headers
    assert answer.json()["code"] == 429


def test_429_with_only_retry_after_custom(local_registry, model):
    """A rule can send Comet's Retry-After-Custom header alone."""
    local_registry.add_fault(path="registry-model/details", status=429, retry_after_custom=1.5)
    answer = local_registry.get("registry-model/details", workspaceName=local_registry.workspace,
                                modelName=model)
    assert answer.headers["Retry-After-Custom"] == "1.5"
    assert "Retry-After" not in answer.headers


def test_rule_limited_to_a_model_spares_the_others(local_registry, model):
    """A rule naming a model leaves requests about other models alone."""
    other = unique_name()
    local_registry.register_zip(other, "1.0.0", BIG)
    local_registry.add_fault(path="item/download", model=model, status=503)
    assert _download(local_registry, other).status_code == 200
    assert _download(local_registry, model).status_code == 503


def test_rule_by_model_matches_writes_by_item_id(local_registry, model):
    """Writes naming only a modelItemId are matched to their model."""
    local_registry.add_fault(path="item/status", model=model, status=503, times=1)
    item = local_registry.item_id(model, "1.0.0")
    answer = local_registry.post("write/registry-model/item/status",
                                 {"status": "Production", "modelItemId": item})
    assert answer.status_code == 503


def test_stall_delays_the_first_byte(local_registry, model):
    """A stall rule waits before answering anything."""
    local_registry.add_fault(path="registry-model/details", stall=0.6, times=1)
    started = time.monotonic()
    answer = local_registry.get("registry-model/details", workspaceName=local_registry.workspace,
                                modelName=model)
    assert answer.status_code == 200 and time.monotonic() - started >= 0.6
    with pytest.raises(requests.Timeout):
        local_registry.add_fault(path="registry-model/details", stall=1.0, times=1)
        requests.get(f"{local_registry.api_url}/registry-model/details",
                     params={"workspaceName": local_registry.workspace, "modelName": model},
                     headers=local_registry.headers, timeout=0.3)


def test_cut_short_closes_the_connection_mid_body(local_registry, model):
    """A cut rule sends the full Content-Length but only N bytes, then closes."""
    local_registry.add_fault(path="item/download", cut_after=1000, times=1)
    connection = http.client.HTTPConnection("127.0.0.1", local_registry.port, timeout=5)
    connection.request("GET", f"{API}/registry-model/item/download?workspaceName="
                       f"{local_registry.workspace}&modelName={model}&version=1.0.0",
                       headers=local_registry.headers)
    response = connection.getresponse()
    assert int(response.headers["Content-Length"]) == len(BIG)
    with pytest.raises(http.client.IncompleteRead) as short:
        response.read()
    assert len(short.value.partial) == 1000
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        local_registry.add_fault(path="item/download", cut_after=10, times=1)
        _download(local_registry, model)


def test_corrupt_flips_a_byte_keeping_the_length(local_registry, model):
    """A corrupt rule changes exactly one byte of the body."""
    local_registry.add_fault(path="item/download", corrupt=True, times=1)
    body = _download(local_registry, model).content
    assert len(body) == len(BIG)
    assert sum(a != b for a, b in zip(body, BIG, strict=True)) == 1
    assert body[len(BIG) // 2] != BIG[len(BIG) // 2]


def test_drip_sends_the_body_slowly(local_registry, model):
    """A drip rule paces the body at the given bytes per second."""
    local_registry.add_fault(path="item/download", drip_bps=len(BIG) * 2, times=1)
    started = time.monotonic()
    assert _download(local_registry, model).content == BIG
    assert time.monotonic() - started >= 0.4


def test_file_size_delta_in_json_answers(local_registry, model):
    """A file_size_delta rule misreports every fileSize of the matched answer."""
    true_size = local_registry.details(model)["versions"][0]["assets"][0]["fileSize"]
    local_registry.add_fault(path="registry-model/details", file_size_delta=5, times=1)
    lied = local_registry.details(model)["versions"][0]["assets"][0]["fileSize"]
    assert lied == true_size + 5
    assert local_registry.details(model)["versions"][0]["assets"][0]["fileSize"] == true_size


def test_rules_replace_and_clear(local_registry):
    """PUT replaces the rules, DELETE clears them, and listing shows what is left."""
    local_registry.add_fault(path="a", status=500)
    rules = local_registry.set_faults({"path": "b", "status": 503, "times": 3})
    assert [(r["path"], r["times"]) for r in rules] == [("b", 3)]
    local_registry.clear_faults()
    assert local_registry.faults() == []


def test_bad_rules_are_400(local_registry):
    """Unknown fields and wrong types are refused with a message."""
    for rule in ({"status": 500}, {"path": "x", "sttus": 500}, {"path": "x", "times": 0},
                 {"path": "x", "stall": "long"}):
        answer = requests.post(f"{local_registry.url}/-/faults", json=rule,
                               headers=local_registry.headers, timeout=5)
        assert answer.status_code == 400, rule


def test_admin_needs_the_api_key(local_registry):
    """The admin endpoints are refused without the key."""
    assert requests.get(f"{local_registry.url}/-/requests", timeout=5).status_code == 401


def test_request_counts_per_path_and_method(local_registry, model):
    """Each request is counted by path and by method + path until reset."""
    local_registry.reset_request_counts()
    for _ in range(3):
        local_registry.details(model)
    _download(local_registry, model)
    assert local_registry.count("registry-model/details") == 3
    assert local_registry.count("registry-model/details", "GET") == 3
    assert local_registry.count("registry-model/details", "POST") == 0
    assert local_registry.request_counts()["total"] == 4
    local_registry.reset_request_counts()
    assert local_registry.request_counts()["total"] == 0


def test_faults_on_is_alive(local_registry):
    """Rules apply to isAlive too, so clients can be tested on an unhealthy server."""
    local_registry.add_fault(path="isAlive", status=503, times=1)
    assert requests.get(f"{local_registry.url}/clientlib/isAlive/ver", timeout=5).status_code == 503
    assert local_registry.is_alive()


def test_raw_socket_sees_connection_close_after_cut(local_registry, model):
    """After a cut the server closes the socket rather than leaving the client waiting."""
    local_registry.add_fault(path="item/download", cut_after=100, times=1)
    with socket.create_connection(("127.0.0.1", local_registry.port), timeout=5) as sock:
        sock.sendall(f"GET {API}/registry-model/item/download?workspaceName="
                     f"{local_registry.workspace}&modelName={model}&version=1.0.0 HTTP/1.1\r\n"
                     f"Host: x\r\nAuthorization: {local_registry.api_key}\r\n\r\n".encode())
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    assert len(received.split(b"\r\n\r\n", 1)[1]) == 100
