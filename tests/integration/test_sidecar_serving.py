"""The two-phase handover with real serving: a version serving refuses is never published,
never retried in a loop, and the next good version goes through."""

import time

from devkit.models import trained_models, wrong_golden  # noqa: F401
from devkit.processes import free_port, published_versions, running_sidecar, wait_until
from devkit.registry import unique_name
from tests.support.serving_process import launch

TOKEN = "handover-token-8086"


def test_rejected_version_is_not_retried_and_a_good_one_follows(local_registry, tmp_path,
                                                                trained_models):  # noqa: F811
    name = unique_name("diamonds")
    local_registry.register_folder(name, "1.0.0", trained_models.pipeline, status="Production")
    root = tmp_path / "models"
    with running_sidecar(local_registry, root, name) as first:  # no serving yet: publish as is
        first.wait_for_versions({name: "1.0.0"})
    serving = launch(root, tmp_path, token=TOKEN)
    try:
        with running_sidecar(local_registry, root, name, SERVING_URL=serving.admin_url,
                             RELOAD_TOKEN=TOKEN) as sidecar:
            bad = wrong_golden(trained_models.pipeline, tmp_path / "bad")
            local_registry.register_folder(name, "1.1.0", bad, status="Production")
            wait_until(lambda: sidecar.status()["rejected"], 20, what="a rejection")
            rejection = sidecar.status()["rejected"][-1]
            assert rejection["versions"] == {name: "1.1.0"} and "golden" in rejection["reason"]
            local_registry.reset_request_counts()
            time.sleep(2.5)  # several polls
            assert local_registry.downloads() == 0
            assert published_versions(root) == {name: "1.0.0"}
            assert serving.predict().headers["X-Model-Version"] == "1.0.0"
            assert len(list((root / "snapshots").iterdir())) == 1  # the rejected one is gone
            assert 'registry_sync_rejections_total{reason="serving"} 1.0' in sidecar.metrics()
            assert sidecar.events("model_rejected")

            local_registry.register_folder(name, "1.2.0", trained_models.alternative,
                                           status="Production")
            sidecar.wait_for_versions({name: "1.2.0"})
            serving.wait_for_version("1.2.0", timeout=5)
    finally:
        serving.stop()


def test_a_version_published_while_serving_was_down_is_rolled_back_when_refused(
        local_registry, tmp_path, trained_models):  # noqa: F811
    """Serving down: publish without validation; serving refuses it on start → roll back."""
    name = unique_name("diamonds")
    local_registry.register_folder(name, "1.0.0", trained_models.pipeline, status="Production")
    root, admin = tmp_path / "models", free_port()
    with running_sidecar(local_registry, root, name,
                         SERVING_URL=f"http://127.0.0.1:{admin}", RELOAD_TOKEN=TOKEN) as sidecar:
        sidecar.wait_for_versions({name: "1.0.0"})  # serving not up: published unvalidated
        bad = wrong_golden(trained_models.pipeline, tmp_path / "bad")
        local_registry.register_folder(name, "1.1.0", bad, status="Production")
        sidecar.wait_for_versions({name: "1.1.0"})  # still down: the bad one is published too
        serving = launch(root, tmp_path, admin=admin, token=TOKEN, wait=False)
        try:
            sidecar.wait_for_versions({name: "1.0.0"}, timeout=30)  # rolled back
            serving.wait_for_version("1.0.0", timeout=15)
            rejection = sidecar.status()["rejected"][-1]
            assert rejection["versions"] == {name: "1.1.0"} and "golden" in rejection["reason"]
            assert sidecar.events("model_rolled_back")
            time.sleep(2)  # several polls: the refused version is not published again
            assert published_versions(root) == {name: "1.0.0"}
            assert sidecar.status()["published"]["versions"] == {name: "1.0.0"}
        finally:
            serving.stop()
