"""Hostile input against the live pod: fuzzed JSON, bodies, forms, methods and paths never get a
5xx; admin endpoints need the token and do not exist on the public port; no secret leaks.

Request shapes come from the app's own OpenAPI document (the file serving serves), mutated by
hypothesis; every run is bounded (MAX_EXAMPLES per test, no deadline) and hits gunicorn on
127.0.0.1. The pod's distinctive secrets are scanned for in every answer.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from urllib.parse import quote

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from serving.http.openapi import document
from serving.inputs.schema import DIAMONDS
from tests.support.pod_system import RELOAD_TOKEN

OPENAPI = json.loads((Path(__file__).resolve().parents[2] / "serving" / "openapi.json")
                     .read_text())
INSTANCE = OPENAPI["components"]["schemas"]["Instance"]
FEATURES = INSTANCE["properties"]
MAX_BATCH = OPENAPI["components"]["schemas"]["Batch"]["properties"]["instances"]["maxItems"]
MAX_EXAMPLES = 200
FUZZ = settings(max_examples=MAX_EXAMPLES, deadline=None, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])
METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"]
ADMIN_PATHS = ["/-/reload", "/-/validate", "/-/", "/-/metrics"]
MARKUP = "<script>alert(1)</script>"


def feature_value(spec: dict) -> st.SearchStrategy:
    """A valid value of one feature, as the OpenAPI document describes it."""
    if "enum" in spec:
        return st.sampled_from(spec["enum"])
    return st.floats(spec["minimum"], spec["maximum"], allow_nan=False)


JSON_ANY = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=40)
    | st.sampled_from([10**400, -(10**400), 1e308, -0.0, "", "NaN", MARKUP, "é" * 300]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner,
                                                                max_size=4),
    max_leaves=12)
VALID_INSTANCE = st.fixed_dictionaries({name: feature_value(spec)
                                        for name, spec in FEATURES.items()})


@st.composite
def mutated_instance(draw) -> dict:
    """A valid instance with zero or more fields dropped, replaced or added."""
    instance = draw(VALID_INSTANCE)
    for _ in range(draw(st.integers(0, 3))):
        action = draw(st.sampled_from(["drop", "replace", "add"]))
        if action == "drop" and instance:
            instance.pop(draw(st.sampled_from(sorted(instance))))
        elif action == "replace":
            instance[draw(st.sampled_from(sorted(FEATURES)))] = draw(JSON_ANY)
        else:
            instance[draw(st.text(max_size=12))] = draw(JSON_ANY)
    return instance


BODIES = st.one_of(
    mutated_instance(),
    st.fixed_dictionaries({"instances": st.lists(mutated_instance(), max_size=5)}),
    st.fixed_dictionaries({"instances": JSON_ANY}),
    st.builds(lambda n, x: {"instances": [x] * n}, st.sampled_from([MAX_BATCH, MAX_BATCH + 1]),
              VALID_INSTANCE),
    JSON_ANY,
)


def is_valid(body) -> bool:
    """True when the body is a valid instance or batch by the OpenAPI document."""
    def instance(x) -> bool:
        return isinstance(x, dict) and set(x) == set(FEATURES) and all(
            (x[k] in s["enum"]) if "enum" in s else (
                # bounds first: an int too large for a float never reaches isfinite (OverflowError)
                type(x[k]) in (int, float) and s["minimum"] <= x[k] <= s["maximum"]
                and math.isfinite(x[k])) for k, s in FEATURES.items())
    if isinstance(body, dict) and set(body) == {"instances"}:
        items = body["instances"]
        return isinstance(items, list) and 1 <= len(items) <= MAX_BATCH and all(
            instance(x) for x in items)
    return instance(body)


@pytest.fixture
def http(pod):
    """A session for the fuzzed requests; every answer is scanned for secrets."""
    with requests.Session() as session:
        yield session


def scanned(pod, response: requests.Response, where: str) -> requests.Response:
    pod.scan.check(response.text, where, "error body" if response.status_code >= 400
                   else "output")
    return response


def test_the_served_openapi_document_is_the_one_the_fuzzing_follows(pod, http):
    """/api/v1/openapi.json is serving/openapi.json (the demo's document) but for the registry
    model its examples name: the same features, limits and answers."""
    served = http.get(pod.serving.url + "/api/v1/openapi.json", timeout=5).json()
    assert served["components"] == OPENAPI["components"]
    assert served == document(DIAMONDS, MAX_BATCH, pod.model)


@FUZZ
@given(body=BODIES)
def test_fuzzed_json_predictions_never_get_a_5xx(pod, http, body):
    """Valid bodies: 200 with a label; anything else: 400/413 naming the fields; never 5xx."""
    response = scanned(pod, http.post(pod.serving.url + "/api/v1/predict",
                                      data=json.dumps(body), timeout=10,
                                      headers={"Content-Type": "application/json"}), "predict")
    assert response.status_code in (200, 400, 413), response.text[:500]
    answer = response.json()
    if is_valid(body):
        assert response.status_code == 200, response.text[:500]
    if response.status_code == 200:
        assert response.headers["X-Model-Version"] == answer["model"]["version"]
        for prediction in answer.get("predictions", [answer]):
            assert prediction["label"] in ("Gold", "Silver")
            assert 0.0 <= prediction["probability"] <= 1.0
    else:
        assert answer["error"] in ("invalid_input", "batch_too_large") and answer["message"]
        assert answer["errors"] and all(isinstance(e["field"], str) and e["message"]
                                        for e in answer["errors"])


@FUZZ
@given(body=st.binary(max_size=3000),
       content_type=st.sampled_from(["application/json", "application/json; charset=utf-8",
                                     "text/plain", "application/x-www-form-urlencoded",
                                     "multipart/form-data", "", "application/json\x00x"]))
def test_fuzzed_raw_bodies_never_get_a_5xx(pod, http, body, content_type):
    """Any bytes under any Content-Type: 400, 413 or 415 (or 200 if they happen to be valid)."""
    response = scanned(pod, http.post(pod.serving.url + "/api/v1/predict", data=body,
                                      headers={"Content-Type": content_type}, timeout=10),
                       "predict (raw)")
    assert response.status_code in (200, 400, 413, 415), response.text[:500]


FORM_VALUE = st.one_of(
    st.sampled_from(["", " ", MARKUP, "1e309", "nan", "-inf", "0x10", "1_000", "١٢"]),
    st.text(max_size=30), st.floats().map(str),
    st.builds(lambda a, b: a + MARKUP + b, st.text(max_size=5), st.text(max_size=5)))


@FUZZ
@given(fields=st.dictionaries(st.sampled_from(sorted(FEATURES)) | st.text(max_size=10),
                              FORM_VALUE, max_size=12))
def test_fuzzed_form_posts_never_get_a_5xx_nor_echo_markup(pod, http, fields):
    """The HTML form: 200 or 400 with the form again; markup sent is never echoed raw."""
    response = scanned(pod, http.post(pod.serving.url + "/predict", data=fields, timeout=10),
                       "form")
    assert response.status_code in (200, 400), response.text[:500]
    assert "text/html" in response.headers["Content-Type"]
    if any(MARKUP in value for value in fields.values()):
        assert MARKUP not in response.text


PATHS = st.one_of(st.sampled_from(["/", "/predict", "/api/v1/predict", "/api/v1/model",
                                   "/healthz", "/readyz", "/metrics", *ADMIN_PATHS]),
                  st.text(max_size=30).map(lambda t: "/" + quote(t, safe="/")),
                  st.text(max_size=20).map(lambda t: "/-/" + quote(t, safe="/")))


@FUZZ
@given(method=st.sampled_from(METHODS), path=PATHS, auth=st.booleans())
def test_fuzzed_methods_and_paths_never_get_a_5xx_and_admin_paths_are_hidden(
        pod, http, method, path, auth):
    """Any method on any path of the public port: no 5xx; under /-/ always 404, token or not."""
    headers = {"Authorization": f"Bearer {RELOAD_TOKEN}"} if auth else {}
    response = scanned(pod, http.request(method, pod.serving.url + path, headers=headers,
                                         timeout=10), f"{method} {path}")
    assert response.status_code < 500, (method, path, response.status_code)
    if path.startswith("/-/"):
        # 404; or 400 for a path refused before any route is matched, an encoded NUL or a
        # climb above the root: neither says that admin routes exist.
        refused = response.status_code == 400 and ("%00" in path or ".." in path)
        assert response.status_code == 404 or refused, (method, path, response.status_code)


@pytest.mark.parametrize("path", ADMIN_PATHS[:2])
@pytest.mark.parametrize("method", METHODS)
def test_admin_paths_are_404_on_the_public_port_even_with_a_forged_host(pod, http, method,
                                                                         path):
    """Every method, with the right token and a Host header naming the admin port: 404."""
    admin_host = pod.serving.admin_url.removeprefix("http://")
    response = http.request(method, pod.serving.url + path, json={"snapshot": None},
                            headers={"Authorization": f"Bearer {RELOAD_TOKEN}",
                                     "Host": admin_host}, timeout=10)
    assert response.status_code == 404
    assert "Allow" not in response.headers


@pytest.mark.parametrize("path", ["/-/validate", "/-/reload"])
@pytest.mark.parametrize("authorization", [
    None, "", "Bearer", "Bearer wrong-token", f"Basic {RELOAD_TOKEN}", RELOAD_TOKEN,
    f"Bearer {RELOAD_TOKEN}x", f"Bearer {RELOAD_TOKEN[:-1]}", f"Bearer  {RELOAD_TOKEN.upper()}"],
    ids=["none", "empty", "scheme-only", "wrong", "basic-scheme", "no-scheme", "longer",
         "shorter", "upper-case"])
def test_admin_endpoints_refuse_requests_without_the_token(pod, http, path, authorization):
    """On the admin port, anything but `Bearer <token>` is 401, and the answer holds no token."""
    headers = {} if authorization is None else {"Authorization": authorization}
    response = http.post(pod.serving.admin_url + path, json={"snapshot": "x"}, headers=headers,
                         timeout=10)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    pod.scan.check(response.text, f"401 from {path}", "error body")


@FUZZ
@given(snapshot=st.one_of(st.text(max_size=60), JSON_ANY,
                          st.sampled_from(["..", "../..", "/etc", ".staging", "current",
                                           "../snapshots", "%2e%2e", "a/../../b"])))
def test_fuzzed_snapshot_ids_with_the_token_never_get_a_5xx(pod, http, snapshot):
    """/-/validate with the token: unknown or malformed ids are 400/404, never a 5xx."""
    response = scanned(pod, http.post(pod.serving.admin_url + "/-/validate",
                                      data=json.dumps({"snapshot": snapshot}), timeout=30,
                                      headers={"Authorization": f"Bearer {RELOAD_TOKEN}",
                                               "Content-Type": "application/json"}),
                       "validate")
    assert response.status_code in (200, 400, 404, 422), response.text[:500]
    if response.status_code == 200:  # only a snapshot that really is in snapshots/
        assert isinstance(snapshot, str) and "/" not in snapshot
        assert (pod.root / "snapshots" / snapshot / "manifest.json").is_file()


def test_no_secret_appears_in_any_log_status_metric_or_error_body(pod, http):
    """Logs of every process, /status, /metrics, `registry-sync status`, error bodies: clean."""
    pod.status()
    pod.sidecar_metrics()
    pod.serving_metrics()
    pod.served_model()
    for flags in ((), ("--json",)):
        assert pod.cli_status(*flags).returncode == 0
    for url in (pod.serving.admin_url + "/-/reload", pod.serving.url + "/-/reload"):
        response = http.post(url, headers={"Authorization": "Bearer nope"}, timeout=10)
        pod.scan.check(response.text, f"error from {url}", "error body")
    pod.scan.check_files()
    seen = pod.scan.seen
    assert all(seen[kind] > 0 for kind in ("log", "status", "metrics", "error body")), seen
