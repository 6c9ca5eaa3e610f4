"""Champion and challenger in serving (two workers, real processes on loopback).

The module's server starts with 2.0.0 as champion and a Staging candidate 2.1.0 (another
model), and logs its verdict to a real local registry every half second. The tests run in order:
shadow on every worker, the verdict in the registry, then promotion under load.
"""

from __future__ import annotations

import json

import pytest

from devkit.load import Load
from devkit.processes import wait_until
from devkit.registry import running_local_registry
from devkit.snapshots import build_snapshot
from model_contract import manifest
from registry_sync.store.publish import publish as publish_link
from tests.support.diamonds import CLASSIFIER
from tests.support.serving_process import launch, wait_for_workers


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    """A local registry receiving the verdict."""
    with running_local_registry(tmp_path_factory.mktemp("registry") / "data") as running:
        yield running


@pytest.fixture(scope="module")
def server(tmp_path_factory, trained_models, registry):
    """Serving 2.0.0, with 2.1.0 linked as `candidate`."""
    work = tmp_path_factory.mktemp("challenger-workers")
    root = work / "models"
    root.mkdir()
    build_snapshot(root, {CLASSIFIER: trained_models.pipeline}, "2.0.0")
    candidate = build_snapshot(root, {CLASSIFIER: trained_models.alternative}, "2.1.0",
                               publish=False)
    publish_link(root, candidate, link="candidate")
    running = launch(root, work, VERDICT_ENABLED="true", VERDICT_INTERVAL="0.5",
                     COMET_API_KEY=registry.api_key,
                     COMET_URL_OVERRIDE=registry.comet_url_override)
    running.candidate = candidate
    yield running
    running.stop()


def test_every_worker_holds_the_staging_version_in_shadow(server):
    seen = wait_for_workers(server, lambda roles: roles["challenger"] is not None)
    for roles in seen.values():
        assert roles["mode"] == "shadow"
        assert roles["challenger"]["version"] == "2.1.0"
        assert roles["champion"]["version"] == "2.0.0"
    with Load(server.url, clients=2, max_requests=300, seconds=60) as load:
        wait_until(lambda: len(load.answers) >= 300, timeout=60, what="300 answers")
    load.assert_all_ok(at_least=300)
    assert load.versions() == {"2.0.0"}, "in shadow, no answer comes from the challenger"
    wait_until(lambda: _figures(server)["compared"] >= 300, timeout=30,
               what="all workers' shadow comparisons")
    metrics = server.session.get(server.admin_url + "/metrics", timeout=10).text
    assert 'serving_role_answers_total{role="champion",version="2.0.0"}' in metrics
    assert 'serving_shadow_scored_total{outcome="agreed",version="2.1.0"}' in metrics


def test_the_verdict_arrives_on_the_challengers_experiment(server, registry):
    folder = server.model_root / "snapshots" / server.candidate
    experiment = manifest.read(folder).model(CLASSIFIER).experimentKey

    def logged() -> list[dict]:
        answer = registry.get("experiment/metrics/get-metric", experimentKey=experiment,
                              metricName="live_agreement_with_champion").json()
        return answer["metrics"]

    points = wait_until(lambda: (p := logged()) and p[-1]["step"] >= 300 and p, timeout=30,
                        what="the agreement metric in the registry")
    figures = _figures(server)
    assert points[-1]["metricValue"] == pytest.approx(figures["agreement"], abs=0.01)
    summary = registry.get("experiment/metrics/summary", experimentKey=experiment).json()
    assert {v["name"] for v in summary["values"]} >= {
        "live_agreement_with_champion", "live_mean_abs_probability_diff",
        "live_inputs_compared", "live_challenger_errors"}


def test_removing_the_challenger_mid_load_costs_no_request(server):
    with Load(server.url, clients=2, seconds=60, max_requests=2000) as load:
        wait_until(lambda: len(load.answers) > 50, timeout=20, what="the load to run")
        (server.model_root / "candidate").unlink()
        wait_for_workers(server, lambda roles: roles["challenger"] is None)
        count = len(load.answers)
        wait_until(lambda: len(load.answers) > count + 50, timeout=20, what="more answers")
    load.assert_all_ok()
    assert load.versions() == {"2.0.0"}
    publish_link(server.model_root, server.candidate, link="candidate")
    wait_for_workers(server, lambda roles: roles["challenger"] is not None)


def test_promoting_the_challenger_swaps_with_zero_failures_and_no_reload(server):
    with Load(server.url, clients=2, seconds=60, max_requests=2000) as load:
        wait_until(lambda: len(load.answers) > 50, timeout=20, what="the load to run")
        publish_link(server.model_root, server.candidate)  # the sidecar: champion = candidate
        (server.model_root / "candidate").unlink()
        server.wait_for_version("2.1.0", timeout=20)
    load.assert_all_ok()
    assert load.versions() == {"2.0.0", "2.1.0"}
    events = [json.loads(line) for line in server.log_path.read_text().splitlines()
              if line.startswith("{")]
    promoted = [e for e in events if e.get("event") == "challenger_promoted"]
    loads = [e for e in events if e.get("event") == "model_loaded"
             and e.get("snapshot") == server.candidate]
    assert len(promoted) == 2, "each worker adopts the challenger it holds"
    assert not loads, "a worker loaded the promoted snapshot again"


def _figures(server) -> dict:
    roles = server.session.get(server.url + "/api/v1/model", timeout=10).json()["roles"]
    return roles["challenger"]["all_workers"]
