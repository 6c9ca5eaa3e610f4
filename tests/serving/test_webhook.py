"""Comet's webhook on serving: 401 without the secret, 429 in a flood, 202 wakes the sidecar."""

from __future__ import annotations

import time

from devkit.processes import free_port, running_sidecar
from devkit.registry import (  # noqa: F401 - fixtures
    local_registry,
    local_registry_server,
    unique_name,
)
from tests.support.diamonds import TOKEN, VALID

SECRET = "comet-webhook-secret-42"
URL = "/api/v1/webhooks/comet"
PAYLOAD = {"workspaceName": "ws", "registryModelName": "m", "version": "1.0.0"}


def test_the_webhook_is_off_until_a_secret_is_set(make_app, publish):
    """No WEBHOOK_SECRET: 404, so an open endpoint is never published by accident."""
    publish("1.0.0")
    assert make_app().test_client().post(URL, json=PAYLOAD).status_code == 404


def test_wrong_secrets_and_floods_are_refused_while_predictions_go_on(make_app, publish):
    """Missing or wrong secret 401; beyond the rate 429 with Retry-After; predictions all 200."""
    publish("1.0.0")
    client = make_app(webhook_secret=SECRET, webhook_per_minute=3,
                      sidecar_url=f"http://127.0.0.1:{free_port()}").test_client()
    answers = [client.post(URL, json=PAYLOAD).status_code,
               client.post(URL, json=PAYLOAD, headers={"Authorization": "guess"}).status_code]
    for _ in range(6):
        answers.append(client.post(URL, json=PAYLOAD,
                                   headers={"Authorization": SECRET}).status_code)
        predicted = client.post("/api/v1/predict", json=VALID)
        assert predicted.status_code == 200 and predicted.headers["X-Model-Version"] == "1.0.0"
    assert answers == [401, 401, 202, 202, 202, 429, 429, 429]
    flooded = client.post(URL, json=PAYLOAD, headers={"Authorization": SECRET})
    assert 1 <= int(flooded.headers["Retry-After"]) <= 60
    assert SECRET not in flooded.get_data(as_text=True)


def test_an_accepted_call_makes_the_sidecar_poll_at_once(make_app, publish,
                                                          local_registry,  # noqa: F811
                                                          tmp_path):
    """A promotion is published seconds after the webhook, though the interval is 10 minutes."""
    publish("1.0.0")
    name = unique_name("clf")
    local_registry.register_files(name, "1.0.0", {"m": b"1"}, status="Production")
    with running_sidecar(local_registry, tmp_path / "sidecar", name, SYNC_INTERVAL="600",
                         RELOAD_TOKEN=TOKEN) as sidecar:
        sidecar.wait_for_versions({name: "1.0.0"})
        local_registry.register_files(name, "1.1.0", {"m": b"2"}, status="Production")
        time.sleep(1)  # the sidecar is well into its 600 s wait
        client = make_app(webhook_secret=SECRET, sidecar_url=sidecar.url).test_client()
        assert client.post(URL, json=PAYLOAD, headers={"Authorization": SECRET}).status_code == 202
        sidecar.wait_for_versions({name: "1.1.0"}, timeout=20)
