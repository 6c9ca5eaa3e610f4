"""Choosing the production version follows docs/comet-api.md §4."""

import dataclasses

import pytest

from registry_sync.errors import UnsafeValue
from registry_sync.registry import (
    Asset,
    ModelVersion,
    RegistryModel,
    check_values,
    find_production_version,
    parse_model,
)


def version(v, status="None", created=0, tags=(), stages=()):
    return ModelVersion(v, f"id-{v}", status, tuple(tags), tuple(stages), "exp", created, "", ())


def model(*versions):
    return RegistryModel("ws", "m", "rid", tuple(versions))


def test_newest_version_with_the_status_wins():
    chosen = find_production_version(model(version("1.0.0", "Production", 1),
                                           version("1.2.0", "Staging", 3),
                                           version("1.1.0", "Production", 2)))
    assert chosen.version == "1.1.0"


def test_ties_on_created_at_are_broken_by_semver():
    chosen = find_production_version(model(version("1.10.0", "Production", 5),
                                           version("1.9.0", "Production", 5),
                                           version("1.10.0-rc1", "Production", 5)))
    assert chosen.version == "1.10.0"


def test_status_is_case_sensitive_and_configurable():
    m = model(version("1.0.0", "production", 1), version("2.0.0", "Staging", 2))
    assert find_production_version(m) is None
    assert find_production_version(m, status="Staging").version == "2.0.0"


def test_tag_or_legacy_stage_is_the_fallback_matched_without_case():
    m = model(version("1.0.0", tags=["Canary"], created=1), version("1.1.0", stages=["canary"],
                                                                      created=2))
    assert find_production_version(m) is None
    assert find_production_version(m, tag="canary").version == "1.1.0"
    with_status = model(version("0.9.0", "Production", 0), *m.versions)
    assert find_production_version(with_status, tag="canary").version == "0.9.0"


def test_no_production_version_means_none():
    assert find_production_version(model()) is None
    assert find_production_version(model(version("1.0.0", "Staging"))) is None


def test_parse_reads_the_documented_details_shape():
    raw = {"registryModelId": "r1", "modelName": "m", "versions": [{
        "registryModelItemId": "i1", "version": "1.2.0", "status": "Production",
        "tags": ["production"], "stages": ["production"], "createdAt": 1700131500000,
        "experimentModel": {"experimentKey": "abc"}, "comment": None,
        "assets": [{"fileName": "model.pkl", "fileSize": 48213, "assetId": "a1",
                    "experimentKey": "abc", "metadata": None}]}]}
    parsed = parse_model("ws", raw)
    v = parsed.versions[0]
    assert (v.version, v.registry_model_item_id, v.experiment_key, v.total_size) == (
        "1.2.0", "i1", "abc", 48213)
    assert v.assets[0].file_name == "model.pkl"


def test_retry_after_reads_seconds_or_a_date_from_either_header():
    from registry_sync.comet import retry_after_seconds

    assert retry_after_seconds({"Retry-After": "3"}) == 3.0
    assert retry_after_seconds({"Retry-After-Custom": "1.5"}) == 1.5
    now = 1_792_567_620.0  # 2026-10-21 07:27:00 UTC
    assert retry_after_seconds({"Retry-After": "Wed, 21 Oct 2026 07:28:00 GMT"},
                               now=lambda: now) == 60.0
    assert retry_after_seconds({"Retry-After": "-4"}) == 0.0
    assert retry_after_seconds({}) is None


def _version(**changes):
    key = "a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6"
    base = ModelVersion("1.2.0-rc.1+build.5", "7dylnoIk8sX5sCojyBRnMNFYv", "Production", (), (),
                        key, 1, "", (Asset("models/m.pkl", 10, "d4fcc9ef", key),))
    return dataclasses.replace(base, **changes)


def test_documented_values_pass_the_edge_check():
    check_values("m", _version())


@pytest.mark.parametrize(("changes", "field"), [
    ({"version": "1.0"}, "version"), ({"version": "01.0.0"}, "version"),
    ({"version": "1.0.0\n"}, "version"), ({"registry_model_item_id": "a/b"}, "registryModelItemId"),
    ({"registry_model_item_id": "x" * 200}, "registryModelItemId"),
    ({"experiment_key": "k\x00"}, "experimentKey"), ({"status": "Prod\r\nuction"}, "status"),
])
def test_values_that_could_reach_a_header_or_a_path_are_refused_naming_the_field(changes, field):
    from registry_sync.errors import UnsafeValue
    with pytest.raises(UnsafeValue, match=f"field {field} is"):
        check_values("m", _version(**changes))


def test_an_unprintable_file_name_is_refused():
    bad = (Asset("m\x1b[2J.pkl", 10, "d4fcc9ef", "a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6"),)
    with pytest.raises(UnsafeValue, match="field fileName"):
        check_values("m", _version(assets=bad))
