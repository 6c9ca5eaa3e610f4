"""A person's browser in the tests: headless Chromium driven by the system chromedriver.

Screenshots go to test-artifacts/ at the repository root.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--window-size=1100,1500")


@pytest.fixture
def browser(tmp_path, monkeypatch):
    """Headless chromium with a fresh profile, driven by the system chromedriver."""
    if not (shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER)):
        pytest.skip("needs /usr/bin/chromium and /usr/bin/chromedriver")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    monkeypatch.setenv("SE_OFFLINE", "true")  # never let Selenium Manager go online
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*FLAGS, f"--user-data-dir={tmp_path / 'profile'}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    driver.set_page_load_timeout(20)
    yield driver
    driver.quit()


def fill(driver, values: dict[str, str]) -> None:
    """Type into the number inputs and choose in the selects."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    for name, value in values.items():
        element = driver.find_element(By.ID, name)
        if element.tag_name == "select":
            Select(element).select_by_value(value)
        else:
            element.clear()
            element.send_keys(value)


def submit_and_wait_for(driver, element_id: str):
    """Submit the form and wait for the next page to show an element."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    old_page = driver.find_element(By.TAG_NAME, "html")
    driver.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait = WebDriverWait(driver, 10)
    wait.until(lambda _: _detached(old_page))
    wait.until(lambda d: d.execute_script("return document.readyState") == "complete")
    return wait.until(expected_conditions.presence_of_element_located((By.ID, element_id)))


def _detached(element) -> bool:
    """True once the element's page is gone; Chromium reports this under several error kinds."""
    from selenium.common.exceptions import WebDriverException

    try:
        element.tag_name  # noqa: B018 - touching the node is the check
    except WebDriverException:
        return True
    return False
