"""Reading versions follows docs/comet-api.md §3-4: semver order, promotion times, facts."""

import dataclasses

import pytest

from common.versions import semver_key
from registry_sync.errors import BadResponse, UnsafeValue
from registry_sync.registries.comet.finder import received_at
from registry_sync.registries.values import (
    Asset,
    ModelVersion,
    check_values,
    parse_model,
    parse_version_details,
)


def version(v, created=0, updated=0):
    return ModelVersion(v, f"id-{v}", "Production", (), (), "exp", created, "", (),
                        last_updated=updated)


def test_semver_order_follows_semver_org_section_11():
    """Numeric pre-release parts compare as numbers; a release sorts after its pre-releases."""
    ordered = ["1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.2", "1.0.0-alpha.10",
               "1.0.0-alpha.beta", "1.0.0-beta", "1.0.0-beta.2", "1.0.0-beta.11", "1.0.0-rc.1",
               "1.0.0", "1.9.0", "1.10.0", "2.0.0"]
    assert sorted(reversed(ordered), key=semver_key) == ordered
    assert semver_key("1.0.0+build.7") == semver_key("1.0.0")
    assert semver_key("not-a-version") < semver_key("0.0.1")


def test_the_local_registry_orders_versions_with_the_same_key():
    from local_registry.store import newest_first

    found = newest_first([{"version": "1.0.0-alpha.2", "createdAt": 5},
                          {"version": "1.0.0-alpha.10", "createdAt": 5}])
    assert [v["version"] for v in found] == ["1.0.0-alpha.10", "1.0.0-alpha.2"]


def changed(status, at):
    return {"actionType": "MODEL_VERSION_STATUS_CHANGED", "createdAt": at,
            "newValue": {"registryModelStatus": status}}


def test_a_version_received_its_status_at_its_newest_change_to_it():
    events = [changed("Production", 50), changed("None", 70), changed("Production", 90),
              changed("Staging", 99), {"actionType": "MODEL_VERSION_CREATED", "createdAt": 10}]
    assert received_at(events, "Production", version("1.0.0", created=10, updated=99)) == 90


def test_a_version_created_with_its_status_received_it_when_created():
    events = [{"actionType": "MODEL_VERSION_CREATED", "createdAt": 10}]
    assert received_at(events, "Production", version("1.0.0", created=10, updated=60)) == 10


def test_without_history_last_updated_stands_in():
    assert received_at([], "Production", version("1.0.0", created=10, updated=60)) == 60


def test_events_without_times_count_from_the_end_of_their_day():
    event = {"actionType": "MODEL_VERSION_STATUS_CHANGED", "day": "November 16, 2023",
             "newValue": {"registryModelStatus": "Production"}}
    at = received_at([event], "Production", version("1.0.0"))
    assert at == 1700179199000  # 2023-11-16 23:59:59 UTC


def test_item_details_about_another_version_are_refused():
    with pytest.raises(BadResponse, match=r"asked for '1\.1\.0'"):
        parse_version_details("m", "1.1.0", {"version": "1.0.0", "registryModelItemId": "i"})
    found = parse_version_details("m", "1.1.0", {
        "version": "1.1.0", "registryModelItemId": "i1", "experimentKey": "abc",
        "status": "Production", "createdAt": 5, "lastUpdated": 9})
    assert (found.experiment_key, found.status, found.last_updated) == ("abc", "Production", 9)


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
    from registry_sync.registries.comet.client import retry_after_seconds

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
