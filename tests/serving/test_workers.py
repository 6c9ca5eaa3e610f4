"""Serving as deployed (the front, two workers): swaps under load, rejections, metrics."""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import dataclass

import psutil
import pytest
import requests

from devkit.models import hostile
from devkit.processes import wait_until
from devkit.snapshots import build_snapshot
from serving.swap import zygote
from tests.support.diamonds import CLASSIFIER, VALID

pytestmark = pytest.mark.slow

LOAD_THREADS = 4
LOAD_SECONDS = 3.0
LOAD_MAX_REQUESTS = 3000
CONVERGENCE = 1.0


@dataclass(frozen=True)
class Answer:
    """One request of the load: when it started and ended, and what came back."""

    started: float
    ended: float
    status: int
    version: str | None
    worker: str | None = None


def run_load(url: str, answers: list[Answer], stop_at: float, budget: int) -> None:
    """Send predictions until the deadline or this thread's request budget runs out."""
    with requests.Session() as session:
        for _ in range(budget):
            if time.monotonic() >= stop_at:
                break
            started = time.monotonic()
            try:
                response = session.post(url + "/api/v1/predict", json=VALID, timeout=5)
                answer = Answer(started, time.monotonic(), response.status_code,
                                response.headers.get("X-Model-Version"))
            except requests.RequestException as exc:
                answer = Answer(started, time.monotonic(), 0, type(exc).__name__)
            answers.append(answer)


def test_publishing_under_load_fails_no_request_and_every_worker_converges(
        served, trained_models):
    """New snapshot during load: zero non-2xx; from 1 s after publication, only the new version.

    No /-/reload is sent: each worker must notice `current` by itself.
    """
    from registry_sync.store.publish import publish

    server = served
    server.publish("3.0.0", {CLASSIFIER: trained_models.pipeline})
    server.wait_for_version("3.0.0")
    staged = server.stage("3.1.0", {CLASSIFIER: trained_models.alternative})
    assert server.validate(staged).status_code == 200  # prepare, as the sidecar does
    answers: list[Answer] = []
    budget = LOAD_MAX_REQUESTS // LOAD_THREADS
    stop_at = time.monotonic() + LOAD_SECONDS
    threads = [threading.Thread(target=run_load, args=(server.url, answers, stop_at, budget))
               for _ in range(LOAD_THREADS)]
    for thread in threads:
        thread.start()
    time.sleep(LOAD_SECONDS / 3)
    publishing = time.monotonic()  # a worker may see the new link before publish() returns
    publish(server.model_root, staged)  # commit (rename, then fsync of the folder)
    published = time.monotonic()
    for thread in threads:
        thread.join(LOAD_SECONDS + 10)

    failed = [a for a in answers if a.status != 200]
    assert not failed, f"{len(failed)} failed requests, e.g. {failed[:3]}\n{server.log_tail()}"
    before = [a for a in answers if a.ended < publishing]
    late = [a for a in answers if a.started > published + CONVERGENCE]
    assert before and {a.version for a in before} == {"3.0.0"}
    assert len(late) > 20, "the load did not run long enough after publication"
    stale = [a for a in late if a.version != "3.1.0"]
    assert not stale, f"{len(stale)} answers from the old version > 1 s after publication"


def test_metrics_add_up_over_workers(served):
    """/metrics sums both workers' counters and shows the served version."""
    server = served
    for _ in range(10):
        assert server.predict().status_code == 200
    text = server.session.get(server.admin_url + "/metrics", timeout=5).text
    served = server.predict().headers["X-Model-Version"]
    info = [line for line in text.splitlines() if line.startswith("serving_model_info{")
            and f'version="{served}"' in line]
    assert info and info[0].endswith(" 1.0")
    requests_ok = [line for line in text.splitlines() if line.startswith(
        'serving_requests_total{endpoint="api.predict",outcome="ok"}')]
    assert float(requests_ok[0].split()[-1]) >= 10
    assert 'serving_model_loaded 1.0' in text


def test_admin_endpoints_answer_only_on_the_admin_port(served):
    """/-/reload: 404 on the public port, 200 with the token on the admin port."""
    server = served
    public = server.session.post(server.url + "/-/reload", json={"snapshot": None},
                                 headers={"Authorization": "Bearer x"}, timeout=5)
    assert public.status_code == 404
    response = server.admin("/-/reload", None)
    assert response.status_code == 200
    assert response.json()["outcome"] in ("swapped", "unchanged")


def test_a_broken_snapshot_is_rejected_and_the_old_model_keeps_serving(
        served, trained_models, tmp_path):
    """Validate says 422; published anyway, every worker refuses it and keeps its model."""
    server = served
    server.publish("4.0.0", {CLASSIFIER: trained_models.pipeline})
    server.wait_for_version("4.0.0")
    folder = tmp_path / "broken"
    folder.mkdir()
    (folder / "pipeline.pkl").write_bytes(b"truncated")
    broken = server.stage("4.1.0", {CLASSIFIER: folder})

    verdict = server.validate(broken)
    assert verdict.status_code == 422 and verdict.json()["outcome"] == "rejected"
    assert "cannot load" in verdict.json()["reason"]

    from registry_sync.store.publish import publish

    publish(server.model_root, broken)
    assert server.admin("/-/reload", broken).status_code == 422
    deadline, workers = time.monotonic() + 1.5, {}
    while time.monotonic() < deadline:
        response = server.predict()
        assert response.status_code == 200 and response.headers["X-Model-Version"] == "4.0.0"
        model = server.session.get(server.url + "/api/v1/model", timeout=5).json()
        workers[model["worker"]] = model["last_rejection"]
    assert len(workers) == 2, "expected answers from both workers"
    assert all(r is not None and r["snapshot"] == broken for r in workers.values())
    assert server.session.get(server.url + "/readyz", timeout=5).status_code == 200


def _started(server, snapshot: str) -> int:
    """How many validator processes serving started for this snapshot (from its log)."""
    return server.log_path.read_text(errors="replace").count(
        f'"event":"validation_started","snapshot":"{snapshot}"')


def test_validate_answers_running_then_the_shared_verdict_of_a_hanging_model(
        served, trained_models, tmp_path):
    """202 while the validator runs (any worker), 422 past VALIDATION_TIMEOUT; one validator."""
    server = served
    hanging = server.stage("5.0.0", {CLASSIFIER: hostile(trained_models.pickled,
                                                          tmp_path / "hang", "hang")})
    first = server.admin("/-/validate", hanging)
    assert first.status_code == 202 and first.json() == {
        "state": "running", "snapshot": hanging, "outcome": "running"}
    verdict = server.validate(hanging)
    assert verdict.status_code == 422
    assert verdict.json()["reason"] == "validation took longer than VALIDATION_TIMEOUT=20s"
    again = [server.admin("/-/validate", hanging) for _ in range(6)]
    assert {r.status_code for r in again} == {422}, "every worker reads the same verdict"
    assert _started(server, hanging) == 1
    assert server.predict().status_code == 200


def test_a_model_that_kills_its_loader_is_refused_and_no_worker_dies(
        served, trained_models, tmp_path):
    """SIGKILL, SIGSEGV, too much memory in the warm validator's child: 422 naming it, the same
    workers serving. The warm validator, and so each child it forks, yields the CPU to the
    workers (SCHED_BATCH at nice 10)."""
    server = served
    workers = server.worker_pids()
    master = psutil.Process(server.master_pid())
    (warm,) = [p for p in master.children() if p.name() == zygote.PROCESS_NAME]
    assert (os.sched_getscheduler(warm.pid), warm.nice()) == (os.SCHED_BATCH, 10)
    for payload, reason in (("sigkill", "SIGKILL"), ("segfault", "SIGSEGV"),
                            ("allocate", "VALIDATION_MEMORY_LIMIT")):
        folder = hostile(trained_models.pickled, tmp_path / payload, payload)
        verdict = server.validate(server.stage("5.1.0", {CLASSIFIER: folder}))
        assert verdict.status_code == 422 and reason in verdict.json()["reason"]
    assert server.predict().status_code == 200
    assert server.worker_pids() <= workers, "a worker was replaced"
    assert "Booting worker" not in server.log_tail(60).split("validation_started")[-1]


@pytest.mark.parametrize("path", ["/api/v1/predict", "/predict"])
def test_a_chunked_body_is_refused_with_411_at_any_size(served, path):
    """No Content-Length: 411 naming what to send, small or past MAX_BODY_BYTES, never parsed
    (granian would end a cut or broken chunked body as if it were complete)."""
    row = json.dumps(VALID).encode()
    content_type = "application/json" if path.startswith("/api") else \
        "application/x-www-form-urlencoded"
    for body in (row, b'{"instances": [' + b",".join([row] * 20000) + b"]}"):
        chunks = (body[i:i + 65536] for i in range(0, len(body), 65536))
        response = served.session.post(served.url + path, data=chunks, timeout=30,
                                       headers={"Content-Type": content_type})
        assert response.status_code == 411, response.text[:300]
        assert "Content-Length" in response.json()["message"]
    assert served.predict().status_code == 200


@pytest.mark.parametrize("version", ["4.2.0\r\nX-Injected: 1", "4.2.0\x00", "4.2.0-\u00e9\u2603"])
def test_a_version_no_header_can_hold_is_refused_and_predictions_never_fail(
        served, trained_models, version):
    """Validate: 422 naming the field. Published anyway: JSON and form answers stay 200."""
    from registry_sync.store.publish import publish

    server = served
    served = server.predict().headers["X-Model-Version"]
    staged = server.stage(version, {CLASSIFIER: trained_models.pipeline})
    verdict = server.validate(staged)
    assert verdict.status_code == 422
    assert verdict.json()["reason"].startswith("manifest models[0].version ")
    publish(server.model_root, staged)
    deadline = time.monotonic() + 1.5
    while time.monotonic() < deadline:
        response = server.predict()
        assert response.status_code == 200 and response.headers["X-Model-Version"] == served
        form = server.session.post(server.url + "/predict", data={**VALID, "price": "420"},
                                   timeout=10)
        assert form.status_code == 200


def test_serving_started_on_a_current_that_kills_its_loader_stays_up_without_a_model(
        trained_models, tmp_path):
    """`current` published unvalidated is a model that SIGKILLs its loader: the front starts,
    no worker dies, /readyz and /api/v1/model say why there is no model."""
    from tests.support.serving_process import launch

    root = tmp_path / "models"
    root.mkdir()
    deadly = build_snapshot(root, {CLASSIFIER: hostile(trained_models.pickled,
                                                       tmp_path / "sigkill", "sigkill")})
    server = launch(root, tmp_path, wait=False)
    try:
        ready = wait_until(lambda: _refused_readiness(server), 60,
                           what="readiness naming the refusal")
        assert deadly in ready["reason"] and "SIGKILL" in ready["reason"]
        # Each worker refuses it on its own (the verdict is shared): ask until one has.
        model = wait_until(lambda: _with_rejection(server), 30, what="a worker's refusal")
        assert model["ready"] is False and model["last_rejection"]["snapshot"] == deadly
        assert server.predict().status_code == 503
        assert server.process.poll() is None
        wait_until(lambda: server.log_path.read_text().count("Booting worker") == 2, 30,
                   what="both workers booted")
        assert server.log_path.read_text().count("Spawning worker") == 2, "a worker died"
    finally:
        server.stop()


def _with_rejection(server) -> dict | None:
    """/api/v1/model if the worker answering has a refusal on record, else None."""
    model = server.session.get(server.url + "/api/v1/model", timeout=10).json()
    return model if model.get("last_rejection") else None


def _refused_readiness(server) -> dict | None:
    response = server.session.get(server.url + "/readyz", timeout=10)
    body = response.json()
    return body if response.status_code == 503 and "rejected" in body["reason"] else None


def test_without_the_warm_validator_validation_falls_back_to_a_fresh_process(
        served, trained_models):
    """The warm validator killed: the next validation starts `python -m serving.swap.validator`."""
    server = served
    master = psutil.Process(server.master_pid())
    warm = [p for p in master.children() if p.name() == zygote.PROCESS_NAME]
    assert len(warm) == 1
    warm[0].kill()
    warm[0].wait(10)
    staged = server.stage("7.0.0", {CLASSIFIER: trained_models.alternative})
    verdict = server.validate(staged)
    assert verdict.status_code == 200 and verdict.json()["version"] == "7.0.0"
    assert server.predict().status_code == 200
