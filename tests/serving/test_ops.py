"""Probes, metrics, and the two-phase handover (/-/validate, /-/reload) with its guards."""

from __future__ import annotations

import pytest

from devkit.snapshots import build_snapshot
from registry_sync.store.publish import publish as point_current_at
from tests.support.diamonds import AUTH, CLASSIFIER, TOKEN, VALID


@pytest.fixture
def broken(model_root, tmp_path) -> str:
    """A staged snapshot that cannot be loaded."""
    folder = tmp_path / "broken"
    folder.mkdir()
    (folder / "pipeline.pkl").write_bytes(b"garbage")
    return build_snapshot(model_root, {CLASSIFIER: folder}, "6.6.6", publish=False)


def test_health_and_readiness(client, make_app):
    """/healthz always 200; /readyz 200 with a model, 503 without."""
    assert client.get("/healthz").get_json() == {"status": "ok"}
    ready = client.get("/readyz").get_json()
    assert ready["status"] == "ready" and ready["version"] == "1.0.0"


def test_readiness_says_why_there_is_no_model(make_app, model_root, broken):
    """A rejected first snapshot: 503 with the reason."""
    point_current_at(model_root, broken)
    response = make_app().test_client().get("/readyz")
    assert response.status_code == 503
    assert f"snapshot {broken} was rejected" in response.get_json()["reason"]


def test_metrics_count_requests_and_show_the_served_version(client):
    """Prometheus text with requests by endpoint/outcome and the served version."""
    client.post("/api/v1/predict", json=VALID)
    client.post("/api/v1/predict", json={})
    text = client.get("/metrics").get_data(as_text=True)
    assert 'serving_requests_total{endpoint="api.predict",outcome="ok"}' in text
    assert 'serving_requests_total{endpoint="api.predict",outcome="client_error"}' in text
    assert "serving_request_duration_seconds_bucket" in text
    assert f'model="{CLASSIFIER}"' in text and 'version="1.0.0"' in text
    assert "serving_model_swaps_total" in text and TOKEN not in text


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"},
                                     {"Authorization": f"Basic {TOKEN}"},
                                     {"Authorization": TOKEN}])
def test_admin_endpoints_need_the_token(client, headers):
    """Without the exact bearer token: 401, and nothing happens."""
    for path in ("/-/validate", "/-/reload"):
        response = client.post(path, json={"snapshot": "x"}, headers=headers)
        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"] == "Bearer"
        assert TOKEN not in response.get_data(as_text=True)


def test_admin_endpoints_are_off_without_a_configured_token(make_app, publish):
    """No RELOAD_TOKEN: 403 whatever is sent."""
    publish()
    client = make_app(reload_token=None).test_client()
    assert client.post("/-/reload", json={}, headers={"Authorization": "Bearer "}).status_code \
        == 403


def test_with_an_admin_port_they_exist_only_there(make_app, publish):
    """ADMIN_PORT set: 404 on other ports (the public Service), normal on the admin port."""
    publish()
    client = make_app(admin_port=9091).test_client()
    public = client.post("/-/reload", json={}, headers=AUTH,
                         environ_overrides={"SERVER_PORT": "8080"})
    assert public.status_code == 404
    admin = client.post("/-/reload", json={}, headers=AUTH,
                        environ_overrides={"SERVER_PORT": "9091"})
    assert admin.status_code == 200
    assert client.get("/api/v1/model", environ_overrides={"SERVER_PORT": "8080"}).status_code \
        == 200


def test_validate_accepts_a_good_snapshot_without_serving_it(client, publish):
    """200 accepted with the versions (and `outcome` for older sidecars); live model unchanged."""
    staged = publish("1.1.0", publish=False)
    response = client.post("/-/validate", json={"snapshot": staged}, headers=AUTH)
    assert response.status_code == 200
    assert response.get_json() == {"state": "accepted", "outcome": "ok", "snapshot": staged,
                                   "version": "1.1.0", "versions": {CLASSIFIER: "1.1.0"},
                                   "layout": "pipeline", "checks": "24 golden examples"}
    assert client.post("/api/v1/predict", json=VALID).headers["X-Model-Version"] == "1.0.0"


def test_validate_rejects_an_unfit_snapshot_with_the_reason(client, broken):
    """422 rejected with a reason; the live model keeps serving and shows the rejection."""
    response = client.post("/-/validate", json={"snapshot": broken}, headers=AUTH)
    assert response.status_code == 422
    body = response.get_json()
    assert body["state"] == body["outcome"] == "rejected" and body["snapshot"] == broken
    assert "cannot load" in body["reason"]
    model = client.get("/api/v1/model").get_json()
    assert model["model"]["version"] == "1.0.0"
    assert model["last_rejection"]["snapshot"] == broken


@pytest.mark.parametrize(("body", "status"), [({"snapshot": "20990101T000000Z-abcdef"}, 404),
                                              ({"snapshot": "../../etc"}, 404),
                                              ({}, 400), ({"snapshot": 7}, 400)])
def test_validate_needs_an_existing_snapshot_id(client, body, status):
    """Unknown id: 404; missing or mistyped id: 400 naming snapshot."""
    response = client.post("/-/validate", json=body, headers=AUTH)
    assert response.status_code == status


def test_reload_swaps_to_current_and_reports_it(client, publish):
    """After publishing, reload answers swapped, then unchanged."""
    newest = publish("1.1.0")
    response = client.post("/-/reload", json={"snapshot": newest}, headers=AUTH)
    assert response.get_json() == {"outcome": "swapped", "snapshot": newest,
                                   "requested": newest, "current": newest}
    assert client.post("/api/v1/predict", json=VALID).headers["X-Model-Version"] == "1.1.0"
    again = client.post("/-/reload", json={"snapshot": newest}, headers=AUTH).get_json()
    assert again["outcome"] == "unchanged"


def test_reload_of_a_broken_current_is_422_and_the_old_model_stays(client, model_root, broken):
    """`current` moved to an unfit snapshot: 422, and predictions still come from 1.0.0."""
    point_current_at(model_root, broken)
    response = client.post("/-/reload", json={"snapshot": broken}, headers=AUTH)
    assert response.status_code == 422
    assert response.get_json()["outcome"] == "rejected"
    assert client.post("/api/v1/predict", json=VALID).headers["X-Model-Version"] == "1.0.0"


def test_a_rotated_token_file_is_used_without_restart(make_app, publish, tmp_path):
    """RELOAD_TOKEN_FILE re-read when it changes; stripped; briefly gone: the last token holds."""
    publish()
    secret = tmp_path / "token"
    secret.write_text(f"  {TOKEN}\n")
    client = make_app(reload_token=TOKEN, reload_token_file=secret).test_client()

    def reload_with(token: str) -> int:
        return client.post("/-/reload", json={}, headers={"Authorization": f"Bearer {token}"},
                           ).status_code

    assert reload_with(TOKEN) == 200
    rotated = "rotated-token-4567-abcdef"
    secret.write_text(rotated + "\n")
    assert reload_with(TOKEN) == 401
    assert reload_with(rotated) == 200
    secret.unlink()
    assert reload_with(rotated) == 200
    secret.write_text("")
    assert reload_with(rotated) == 200
