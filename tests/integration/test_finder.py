"""Finding the version to serve the SDK's way, against the local registry over real HTTP.

The registry answers `registry-model/details` in the SDK's shape (no status, no tags) unless a
test says otherwise: the finder must not need them.
"""

import pytest

from devkit.registry import unique_name
from registry_sync.errors import StatusUnknown
from registry_sync.registries.comet.finder import VersionFinder
from tests.support.comet_clients import client_for


@pytest.fixture(params=["sdk", "full"])
def registry(request, local_registry):
    """The module's registry answering details in each shape."""
    local_registry.set_details_shape(request.param)
    yield local_registry
    local_registry.set_details_shape("sdk")


def finder_for(registry, *statuses):
    finder = VersionFinder(client_for(registry), statuses or ("Production",))
    finder.begin_poll()
    return finder


def test_selection_follows_status_then_tag_in_both_details_shapes(registry):
    """items?status= chooses, item/details gives the facts; the tag is the fallback."""
    name = unique_name("clf")
    registry.register_files(name, "1.0.0", {"m": "a"}, status="Production")
    registry.register_files(name, "1.1.0", {"m": "b"}, status="Staging", tags=["canary"])
    client = client_for(registry)
    assert finder_for(registry).find(name, "Production").version.version == "1.0.0"
    found = finder_for(registry).find(name, "Staging").version
    assert (found.version, found.status) == ("1.1.0", "Staging")
    assert found.registry_model_item_id == registry.item_id(name, "1.1.0")
    assert [a.file_name for a in found.assets] == ["m"]
    client.set_status(name, "1.1.0", "None")
    client.set_status(name, "1.0.0", "None")
    assert finder_for(registry).find(name, "Production").version is None
    assert finder_for(registry).find(name, "Production", tag="canary").version.version == "1.1.0"


def test_idle_polls_cost_one_request_per_model(local_registry):
    """Unchanged: one items?status= a poll; item/details only when the chosen version changes."""
    name = unique_name("clf")
    local_registry.register_files(name, "1.0.0", {"m": "a"}, status="Production")
    finder = VersionFinder(client_for(local_registry), ("Production",), refresh_polls=100)
    local_registry.reset_request_counts()
    for _ in range(5):
        finder.begin_poll()
        assert finder.find(name, "Production").version.version == "1.0.0"
    assert local_registry.count("registry-model/items") == 5
    assert local_registry.count("registry-model/item/details") == 1
    assert local_registry.count("registry-model/allowed_status_values") == 1
    assert local_registry.count("registry-model/details") == 0
    local_registry.register_files(name, "1.1.0", {"m": "b"}, status="Production")
    local_registry.set_status(name, "1.0.0", "None")
    finder.begin_poll()
    assert finder.find(name, "Production").version.version == "1.1.0"
    assert local_registry.count("registry-model/item/details") == 2


def test_a_rollback_in_the_ui_is_served_at_the_next_poll(local_registry):
    """An older version set back to Production while a newer keeps it: the older is served."""
    name = unique_name("clf")
    local_registry.register_files(name, "1.0.0", {"m": "a"}, status="Production")
    local_registry.register_files(name, "1.1.0", {"m": "b"}, status="Production")
    finder = finder_for(local_registry)
    found = finder.find(name, "Production")
    assert (found.version.version, found.others) == ("1.1.0", ("1.0.0",))
    local_registry.set_status(name, "1.0.0", "None")
    assert finder.find(name, "Production").version.version == "1.1.0"
    local_registry.set_status(name, "1.0.0", "Production")  # the rollback, 1.1.0 untouched
    found = finder.find(name, "Production")
    assert (found.version.version, found.others) == ("1.0.0", ("1.1.0",))


def test_an_unknown_status_names_the_allowed_ones_and_says_case_matters(local_registry):
    """`production` is not `Production`: a clear error, before anything is chosen."""
    finder = VersionFinder(client_for(local_registry), ("production", "Staging"))
    with pytest.raises(StatusUnknown) as caught:
        finder.begin_poll()
    message = str(caught.value)
    assert "'production' is not one workspace" in message
    assert "'None', 'Development', 'Staging', 'Production'" in message
    assert "case-sensitively" in message and "written 'Production'" in message
    assert "REGISTRY_STATUS" in message
    with pytest.raises(StatusUnknown):
        finder.begin_poll()  # checked again at every poll until it is fixed
