"""The trust boundary: the sidecar takes only the configured registry model's own files; serving
loads our pipeline with skops (see test_serving_refusals for a type outside its trusted list)
and still accepts the seed's five pickles.

Registry answers about another version than the one asked for, or whose assets belong to another
experiment, are refused before anything is downloaded (BadResponse), with serving untouched.
"""

from __future__ import annotations

import pytest

from devkit.snapshots import seed_models

FOREIGN = {
    "another-version": ({"version_name": "9.9.9"},
                        "answered for version '9.9.9' of"),
    "another-experiment": ({"asset_experiment_key": "0" * 32},
                           "not to the version's experiment"),
}


@pytest.mark.parametrize("case", sorted(FOREIGN))
def test_a_registry_answer_outside_the_configured_model_is_refused_before_download(pod, case):
    """item/details naming another version, or assets of another experiment: refused, no
    download."""
    rule, reason = FOREIGN[case]
    before = pod.published()
    with pod.load() as load:
        pod.fault(path="registry-model/item/details", **rule)
        version = pod.promote()
        assert reason in pod.wait_error("BadResponse")["message"]
        assert pod.sidecar_events("sync_failed")[-1]["error_type"] == "BadResponse"
        assert pod.registry.downloads() == 0
        assert pod.published() == before
        pod.registry.clear_faults()
        pod.wait_served(version)
    load.assert_all_ok()
    pod.assert_only_published_answered(load)


def test_the_seed_pickles_are_still_served_through_the_whole_pod(pod):
    """Five registry models from one experiment (the seed's pickles) sync and serve together."""
    names = {}
    for name, folder in seed_models(pod.folders.seed).items():
        names[name] = f"{pod.model}-{name}"
        pod.registry.register_folder(names[name], "1.0.0", folder, status="Production",
                                     experimentKey="5eed" * 8)
    pod.restart_sidecar(models=",".join(names.values()))
    with pod.load() as load:
        pod.sidecar.wait_for_versions(dict.fromkeys(names.values(), "1.0.0"))
        pod.serving.wait_for_version("1.0.0")
        model = pod.served_model()
    load.assert_all_ok()
    assert model["layout"] == "seed" and model["primary"] == names["diamonds-model"]
    assert set(model["model"]["versions"]) == set(names.values())
