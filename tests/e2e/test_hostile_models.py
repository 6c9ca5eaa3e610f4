"""Models that attack whatever loads them, unsafe registry versions, oversized chunked bodies
(issue 11, cases 1, 3, 5 and 12) against the whole pod.

A model whose unpickling SIGKILLs or segfaults its loader, or sleeps past every timeout, is
loaded by serving's validator process only: it is refused with that reason, never published,
never retried, no gunicorn worker dies, and the old model answers every prediction throughout.
"""

from __future__ import annotations

import json

import pytest
import requests

from devkit.load import VALID
from devkit.models import hostile
from devkit.processes import wait_until
from devkit.snapshots import build_snapshot
from model_contract import layout
from registry_sync.store import snapshot
from tests.support.pod_system import RELOAD_TOKEN, SERVING_DEFAULTS, SIDECAR_DEFAULTS

REFUSALS = {
    "sigkill": "validator killed by signal 9 (SIGKILL); likely out of memory",
    "segfault": "validator killed by signal 11 (SIGSEGV)",
    "hang": "validation took longer than VALIDATION_TIMEOUT="
            f"{SERVING_DEFAULTS['VALIDATION_TIMEOUT']}s",
}
VERDICT_WAIT = 90.0


def booted_workers(pod) -> int:
    """How many gunicorn workers have booted so far (a dead worker is replaced by a new one)."""
    return sum(1 for e in pod.serving_events() if str(e.get("event", "")).startswith(
        "Booting worker"))


@pytest.mark.parametrize("payload", sorted(REFUSALS))
def test_a_model_that_kills_or_outlasts_its_loader_is_refused_once_and_nothing_breaks(
        pod, tmp_path, payload):
    """Refused with the reason, not published, not retried; zero failed predictions, no worker
    replaced, snapshot folders bounded."""
    # Both workers booted first (the pod is ready once one answers; the other's line may follow).
    workers = wait_until(lambda: (n := booted_workers(pod)) >= 2 and n, 30, what="two workers")
    before = pod.published()
    with pod.load(seconds=120) as load:
        version = pod.promote(hostile(pod.folders.pipeline, tmp_path / payload, payload))
        wait_until(lambda: pod.rejection_of(version), VERDICT_WAIT,
                   what=f"the rejection of {version}")
        rejection = pod.wait_refused_once(version)
        assert rejection["reason"] == REFUSALS[payload]
        assert pod.published() == before
    load.assert_all_ok()
    assert version not in load.versions()
    assert booted_workers(pod) == workers, "a gunicorn worker died and was replaced"
    snapshots = list(layout.snapshots_dir(pod.root).iterdir())
    assert len(snapshots) <= int(SIDECAR_DEFAULTS["KEEP_SNAPSHOTS"]) + 1, snapshots


@pytest.mark.parametrize("version", ["1.0.0\r\nX-Injected: 1", "1.0.0\x00", "1.0.0-\u2603"])
def test_a_version_no_header_can_hold_is_refused_by_serving_naming_the_field(pod, version):
    """A staged snapshot whose version has CR/LF, NUL or non-Latin-1 (the local registry cannot
    hold one; a registry might): serving's /-/validate refuses it at once, naming the field,
    while predictions answer 200. (Published anyway: tests/serving/test_workers.py.)"""
    staged = build_snapshot(pod.root, {pod.model: pod.folders.pipeline}, version, publish=False)
    try:
        with pod.load(seconds=20) as load:
            verdict = requests.post(pod.serving.admin_url + "/-/validate", timeout=60,
                                    json={"snapshot": staged},
                                    headers={"Authorization": f"Bearer {RELOAD_TOKEN}"})
            assert verdict.status_code == 422
            assert verdict.json()["reason"].startswith("manifest models[0].version ")
            form = requests.post(pod.serving.url + "/predict", data=VALID, timeout=10)
            assert form.status_code == 200
        load.assert_all_ok(at_least=1)
    finally:
        snapshot.discard(pod.root, staged)


def test_a_chunked_body_over_the_limit_is_refused_not_parsed(pod):
    """Transfer-Encoding: chunked past MAX_BODY_BYTES: 411 (send a Content-Length), not a parse
    of what was cut."""
    row = json.dumps(VALID).encode()
    body = b'{"instances": [' + b",".join([row] * (2 * 1024 * 1024 // len(row) + 10)) + b"]}"
    response = requests.post(pod.serving.url + "/api/v1/predict", timeout=30,
                             data=(body[i:i + 65536] for i in range(0, len(body), 65536)),
                             headers={"Content-Type": "application/json"})
    assert response.status_code == 411
    assert response.json()["errors"][0]["field"] == "body"
