"""A person in a real (headless) browser: fill the form, read the result, see field errors.

Screenshots go to test-artifacts/ at the repository root.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.browser import ARTIFACTS, browser, fill, submit_and_wait_for  # noqa: F401

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def screenshot(driver, name: str) -> Path:
    """Save the page as test-artifacts/<name>.png."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    driver.save_screenshot(str(path))
    return path


def test_a_person_grades_a_diamond_and_corrects_a_mistake(browser, served):  # noqa: F811
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
