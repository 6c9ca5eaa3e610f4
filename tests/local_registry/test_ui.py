"""The registry's web page over HTTP: login by API key, the versions table, the status control."""

import re

import requests

from devkit.registry import MEMBER_API_KEY, unique_name


def logged_in(registry, key=None) -> requests.Session:
    """A browser-like session that has logged in to the page."""
    session = requests.Session()
    answer = session.post(f"{registry.url}/ui/login", data={"api_key": key or registry.api_key},
                          timeout=10)
    assert answer.status_code == 200, answer.text
    return session


def test_the_page_wants_the_api_key_and_keeps_only_a_session_cookie(local_registry):
    """No page without logging in; a wrong key is refused; the key is never in a cookie or URL."""
    anonymous = requests.get(f"{local_registry.url}/ui/", timeout=10)
    assert anonymous.url.endswith("/ui/login") and 'type="password"' in anonymous.text
    wrong = requests.post(f"{local_registry.url}/ui/login", data={"api_key": "nope"}, timeout=10)
    assert wrong.status_code == 401 and "not this registry" in wrong.text
    session = logged_in(local_registry)
    (cookie,) = session.cookies
    assert cookie.value != local_registry.api_key and local_registry.api_key not in cookie.value
    assert cookie.has_nonstandard_attr("HttpOnly") and cookie.path == "/ui"
    assert local_registry.api_key not in local_registry.logs()
    session.post(f"{local_registry.url}/ui/logout", timeout=10)
    assert session.get(f"{local_registry.url}/ui/", timeout=10).url.endswith("/ui/login")


def test_versions_show_status_tags_experiment_created_and_size_and_the_status_changes(
        local_registry):
    """Setting a status from the page is what item/status does: the REST API sees it."""
    name = unique_name("ui")
    local_registry.register_zip(name, "1.0.0", b"x" * 2048, status="Production", tags=["baseline"],
                                experimentKey="abc123",
                                assets='[{"fileName": "model.bin", "fileSize": 2048}]')
    local_registry.register_zip(name, "1.1.0", b"y" * 10)
    session = logged_in(local_registry)
    listing = session.get(f"{local_registry.url}/ui/", timeout=10).text
    assert name in listing
    page = session.get(f"{local_registry.url}/ui/models/{local_registry.workspace}/{name}",
                       timeout=10).text
    row = re.search(r'<tr id="v-1\.0\.0">(.*?)</tr>', page, re.S).group(1)
    assert "Production" in row and "baseline" in row and "abc123" in row
    assert "2.0 KiB" in row and re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", row)

    changed = session.post(
        f"{local_registry.url}/ui/models/{local_registry.workspace}/{name}/status",
        data={"version": "1.1.0", "status": "Production"}, timeout=10)
    assert changed.status_code == 200 and "1.1.0 is now Production" in changed.text
    versions = {v["version"]: v["status"] for v in local_registry.details(name)["versions"]}
    assert versions == {"1.0.0": "Production", "1.1.0": "Production"}


def test_mistakes_are_pages_naming_them_never_a_500(local_registry):
    """An unknown status, version or model answers a page that says which."""
    name = unique_name("ui")
    local_registry.register_zip(name, "1.0.0", b"x")
    session = logged_in(local_registry)
    base = f"{local_registry.url}/ui/models/{local_registry.workspace}"
    bad_status = session.post(f"{base}/{name}/status", data={"version": "1.0.0",
                                                             "status": "Shipped"}, timeout=10)
    assert bad_status.status_code == 400 and "Shipped" in bad_status.text
    bad_version = session.post(f"{base}/{name}/status", data={"version": "9.9.9",
                                                              "status": "Production"}, timeout=10)
    assert bad_version.status_code == 400 and "9.9.9" in bad_version.text
    missing = session.get(f"{base}/no-such-model", timeout=10)
    assert missing.status_code == 404 and "no-such-model" in missing.text


def test_under_review_a_member_requests_on_the_page_and_an_owner_approves(local_registry):
    """The member key's change to a reviewed status is a request the owner's page approves."""
    name = unique_name("ui")
    item = local_registry.register_zip(name, "1.0.0", b"x")["registryModelItemId"]
    assert local_registry.post(f"write/registry-model/item/{item}/status-configuration",
                               {"status": "Production", "isReviewRequired": True,
                                "statusConfiguration": []}).status_code == 200
    page = f"{local_registry.url}/ui/models/{local_registry.workspace}/{name}"
    member = logged_in(local_registry, MEMBER_API_KEY)
    asked = member.post(f"{page}/status", data={"version": "1.0.0", "status": "Production"},
                        timeout=10)
    assert "Production requested; an owner must approve it" in asked.text
    assert "Production requested" in asked.text and "Approve" not in asked.text
    assert local_registry.details(name)["versions"][0]["status"] == "None"

    owner = logged_in(local_registry)
    assert "Approve" in owner.get(page, timeout=10).text
    approved = owner.post(f"{page}/status", data={"version": "1.0.0", "status": "Production"},
                          timeout=10)
    assert "1.0.0 is now Production" in approved.text and "Approve" not in approved.text
    assert local_registry.details(name)["versions"][0]["status"] == "Production"


def test_a_one_time_login_link_logs_one_browser_in_then_is_spent(tmp_path, caplog):
    """The demo prints /ui/login/<token>: no key to copy; the link works once, a wrong or reused
    one is the login form with a 401, and the token is in no log line."""
    from local_registry.app import create_app

    token = "one-time-8f3a1c"
    app = create_app(tmp_path / "data", "the-api-key", login_token=token)
    browser = app.test_client()
    assert app.test_client().get("/ui/login/not-it").status_code == 401
    first = browser.get(f"/ui/login/{token}")
    assert first.status_code == 302 and first.headers["Location"].endswith("/ui/")
    assert browser.get("/ui/").status_code == 200
    again = app.test_client().get(f"/ui/login/{token}")
    assert again.status_code == 401 and "log in with the API key" in again.get_data(as_text=True)
    assert app.test_client().get("/ui/").status_code == 302  # others still need to log in
    assert token not in caplog.text


def test_without_a_login_token_no_link_logs_in(tmp_path):
    from local_registry.app import create_app

    app = create_app(tmp_path / "data", "the-api-key")
    assert app.test_client().get("/ui/login/anything").status_code == 401
    assert app.test_client().get("/ui/login/").status_code in (302, 404)
