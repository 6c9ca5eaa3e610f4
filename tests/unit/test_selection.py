"""Choosing the production version follows docs/comet-api.md §4."""

from registry_sync.registry import ModelVersion, RegistryModel, find_production_version, parse_model


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
