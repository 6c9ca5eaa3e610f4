"""A person promotes a version from the registry's page in headless Chromium; the prediction form
then shows it, served by the sidecar and gunicorn of the pod without a restart."""

from __future__ import annotations

import pytest

from devkit.processes import wait_until
from tests.support.browser import ARTIFACTS, browser, submit_and_wait_for  # noqa: F401

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_promote_from_the_registry_page_then_the_form_shows_the_new_version(pod, browser):  # noqa: F811
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    version = pod.promote(status="None")  # registered, not promoted
    browser.get(f"{pod.registry.url}/ui/")
    assert browser.current_url.endswith("/ui/login")
    browser.find_element(By.ID, "api_key").send_keys(pod.registry.api_key)
    submit_and_wait_for(browser, f"model-{pod.registry.workspace}-{pod.model}").click()

    row = browser.find_element(By.ID, f"v-{version}")
    assert row.find_element(By.CSS_SELECTOR, ".status").text == "None"
    Select(row.find_element(By.NAME, "status")).select_by_value("Production")
    row.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait_until(lambda: "is now Production" in browser.page_source, 10, what="the notice")
    assert browser.find_element(By.ID, f"v-{version}").find_element(
        By.CSS_SELECTOR, ".status").text == "Production"
    ARTIFACTS.mkdir(exist_ok=True)
    browser.save_screenshot(str(ARTIFACTS / "registry-ui-promoted.png"))

    def form_shows_the_new_version() -> bool:
        browser.get(f"{pod.serving.url}/")
        return browser.find_element(By.ID, "model-version").text == version

    wait_until(form_shows_the_new_version, 30, interval=0.5, what=f"the form on {version}")
    browser.save_screenshot(str(ARTIFACTS / "form-after-ui-promotion.png"))
