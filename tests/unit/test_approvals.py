"""A version's history says whether a status request is pending."""

from registry_sync.registries.comet.approvals import pending_status


def event(action, at=None, status="Production", user="member"):
    found = {"actionType": action, "newValue": {"registryModelStatus": status}, "userName": user}
    return found if at is None else {**found, "createdAt": at}


def test_a_request_newer_than_any_change_is_pending():
    events = [event("MODEL_VERSION_CREATED", 1), event("MODEL_VERSION_STATUS_REQUEST_CHANGE", 2)]
    assert pending_status(events) == ("Production", "member")


def test_an_approval_or_change_after_the_request_settles_it_even_at_the_same_time():
    events = [event("MODEL_VERSION_STATUS_REQUEST_CHANGE", 5),
              event("MODEL_VERSION_STATUS_REQUEST_APPROVED", 5),
              event("MODEL_VERSION_STATUS_CHANGED", 5)]
    assert pending_status(events) is None


def test_without_times_the_listed_order_newest_first_decides():
    newest_first = [event("MODEL_VERSION_STATUS_CHANGED"),
                    event("MODEL_VERSION_STATUS_REQUEST_CHANGE")]
    assert pending_status(newest_first) is None
    assert pending_status(newest_first[::-1]) == ("Production", "member")
    assert pending_status([event("MODEL_VERSION_DOWNLOADED")]) is None
