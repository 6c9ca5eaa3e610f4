"""Serve your own model, end to end: train -> describe -> register -> promote -> served.

For each of the three models (binary, five classes, price): `registry-sync register
--model-file --sample` (the describe command inside) into the local registry, `registry-sync
promote`, the sidecar installs it through serving's validation, and serving answers the JSON
API, the form in headless Chromium and the Open Inference Protocol through tritonclient; then
version 2 is registered as Production while clients predict: zero failed requests across the
hot swap."""

from __future__ import annotations

import shutil
import time

import pytest
import requests

from devkit.load import Load
from devkit.own_models import OwnModel
from devkit.processes import running_sidecar, wait_until
from devkit.registry import unique_name
from registry_sync.cli import main
from tests.support.browser import ARTIFACTS, CHROMEDRIVER, CHROMIUM, FLAGS, fill
from tests.support.own_models import own_models  # noqa: F401
from tests.support.serving_process import launch

TOKEN = "own-models-token-4471"
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def chromium(tmp_path_factory):
    """One headless Chromium for the module (None where it is not installed)."""
    if not (shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER)):
        yield None
        return
    import os

    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    os.environ.setdefault("SE_OFFLINE", "true")  # never let Selenium Manager go online
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    profile = tmp_path_factory.mktemp("chromium-profile")
    for flag in (*FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    driver.set_page_load_timeout(20)
    yield driver
    driver.quit()


def register(registry, monkeypatch, kind: OwnModel, name: str, version: str, variant: int,
             status: str = "None") -> None:
    """`registry-sync register --model-file --sample`: described, then registered."""
    for key, value in registry.env().items():
        monkeypatch.setenv(key, value)
    folder = kind.folder if variant == 1 else kind.other
    sample = folder.parent / f"{kind.name}.csv"
    flags = ["--unit", "USD"] if kind.name == "price" else []
    assert main(["register", "--model-file", str(folder / "pipeline.skops"), "--sample",
                 str(sample), "--target", kind.target, "--model", name, "--version", version,
                 "--status", status, *flags]) == 0


def wait_served(url: str, kind: OwnModel, version: str, timeout: float = 60) -> None:
    """Until ten answers in a row name the version."""
    def served() -> bool:
        for _ in range(10):
            answer = requests.post(url + "/api/v1/predict", json=kind.instance(), timeout=5)
            if answer.headers.get("X-Model-Version") != version:
                return False
        return True

    wait_until(served, timeout, what=f"{kind.name} {version} served")


def v2_infer(url: str, name: str, kind: OwnModel, expected) -> None:
    """The Open Inference Protocol through tritonclient's HTTP client: outputs per task."""
    import numpy as np
    import tritonclient.http as triton

    client = triton.InferenceServerClient(url.removeprefix("http://"), network_timeout=10)
    try:
        described = client.get_model_metadata(name)
        inputs = []
        for key, value in kind.instance().items():
            text = isinstance(value, str)
            datatype = "BYTES" if text else "INT64" if isinstance(value, int) else "FP64"
            tensor = triton.InferInput(key, [1], datatype)
            tensor.set_data_from_numpy(np.array([value], dtype=object if text else
                                                np.int64 if datatype == "INT64" else np.float64))
            inputs.append(tensor)
        result = client.infer(name, inputs)
    finally:
        client.close()
    if kind.name == "price":
        assert [o["name"] for o in described["outputs"]] == ["value"]
        assert result.as_numpy("value")[0] == pytest.approx(expected, rel=1e-12)
        return
    classes = metadata_classes(kind)
    assert described["outputs"][2] == {"name": "probabilities", "datatype": "FP64",
                                       "shape": [-1, len(classes)]}
    label = result.as_numpy("label")[0]
    assert (label.decode() if isinstance(label, bytes) else label) == expected
    table = result.as_numpy("probabilities").reshape(1, len(classes))
    assert table[0][classes.index(expected)] == result.as_numpy("probability")[0]


def metadata_classes(kind: OwnModel) -> list[str]:
    import json

    return json.loads((kind.folder / "metadata.json").read_text())["classes"]


def use_the_form(driver, url: str, kind: OwnModel) -> str:
    """Fill the form with a sample row, submit, return the result's text; screenshot both."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(url + "/")
    ARTIFACTS.mkdir(exist_ok=True)
    driver.save_screenshot(str(ARTIFACTS / f"own-model-{kind.name}-form.png"))
    fill(driver, {k: str(v) for k, v in kind.instance().items()})
    driver.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    shown = "value" if kind.name == "price" else "label"
    element = WebDriverWait(driver, 15).until(
        expected_conditions.presence_of_element_located((By.ID, shown)))
    driver.save_screenshot(str(ARTIFACTS / f"own-model-{kind.name}-result.png"))
    return element.text


@pytest.mark.parametrize("kind_name", ["gold", "cut", "price"])
def test_an_own_model_is_served_end_to_end_and_swapped_under_load(
        kind_name, own_models, local_registry, tmp_path, monkeypatch, chromium):  # noqa: F811
    kind = own_models[kind_name]
    name = unique_name(f"own-{kind_name}")
    register(local_registry, monkeypatch, kind, name, "1.0.0", 1)
    assert main(["promote", name, "1.0.0", "--status", "Production"]) == 0
    root = tmp_path / "models"
    serving = launch(root, tmp_path, workers=1, token=TOKEN, wait=False)
    try:
        with running_sidecar(local_registry, root, name, SERVING_URL=serving.admin_url,
                             RELOAD_TOKEN=TOKEN):
            wait_served(serving.url, kind, "1.0.0")
            api = requests.post(serving.url + "/api/v1/predict", json=kind.instance(),
                                timeout=5).json()
            frame = kind.sample.drop(columns=[kind.target]).iloc[:1]
            expected = kind.estimator.predict(frame)[0]
            if kind_name == "price":
                assert api["value"] == pytest.approx(expected, rel=1e-12)
            else:
                assert api["label"] == expected
            v2_infer(serving.url, name, kind, expected)
            if chromium is not None:
                shown = use_the_form(chromium, serving.url, kind)
                assert shown.startswith(f"{expected:,.2f}") if kind_name == "price" \
                    else shown == expected
            with Load(serving.url, clients=2, seconds=60, max_requests=3000,
                      bodies=(kind.instance(),)) as load:
                time.sleep(0.5)
                register(local_registry, monkeypatch, kind, name, "1.1.0", 2,
                         status="Production")
                wait_served(serving.url, kind, "1.1.0")
                time.sleep(0.5)
            load.assert_all_ok(at_least=20)
            assert load.versions() == {"1.0.0", "1.1.0"}
    finally:
        serving.stop()
