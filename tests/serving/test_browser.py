"""A person in a real (headless) browser: fill the form, read the result, see field errors.

Screenshots go to test-artifacts/ at the repository root.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.slow]

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


def screenshot(driver, name: str) -> Path:
    """Save the page as test-artifacts/<name>.png."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    driver.save_screenshot(str(path))
    return path


def test_a_person_grades_a_diamond_and_corrects_a_mistake(browser, served):
    """Form -> result with label, probability and version; bad input -> errors by the fields."""
    from selenium.webdriver.common.by import By

    model = served.session.get(served.url + "/api/v1/model", timeout=5).json()
    version = model["model"]["version"]
    browser.get(served.url + "/")
    assert browser.title == "Diamond grader"
    screenshot(browser, "serving-form")

    fill(browser, {"carat": "0.31", "color": "E", "clarity": "VS1", "depth": "61.5",
                   "table": "55", "price": "420", "x": "4.3", "y": "4.32", "z": "2.65"})
    label = submit_and_wait_for(browser, "label").text
    assert label in ("Gold", "Silver")
    assert browser.find_element(By.ID, "probability").text.endswith("%")
    assert browser.find_element(By.ID, "result-version").text == version
    assert browser.find_element(By.ID, "model-version").text == version
    screenshot(browser, "serving-result")

    fill(browser, {"carat": "99", "depth": ""})
    assert "2 fields to correct" in submit_and_wait_for(browser, "error-summary").text
    assert browser.find_element(By.ID, "carat-error").text == "Carat must be between 0.1 and 6"
    assert browser.find_element(By.ID, "depth-error").text == "Total depth is required"
    assert browser.find_element(By.ID, "carat").get_attribute("value") == "99"
    assert browser.find_element(By.ID, "price").get_attribute("value") == "420"
    screenshot(browser, "serving-form-errors")
