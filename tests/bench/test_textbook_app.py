"""The textbook baseline answers, from the same five pickles as the seed layout."""

from __future__ import annotations

import importlib
import sys

import pytest

from bench.common import VALID


@pytest.fixture(scope="module")
def textbook(trained_models):
    """A test client of the textbook app on the seed layout's pickles."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TEXTBOOK_MODEL_DIR", str(trained_models.seed))
        sys.modules.pop("bench.textbook_app", None)
        module = importlib.import_module("bench.textbook_app")
    yield module.app.test_client()
    sys.modules.pop("bench.textbook_app", None)


def test_json_body_gets_a_label(textbook):
    """A JSON instance, as the benchmarks send it, is answered with Gold or Silver."""
    response = textbook.post("/predict", json=VALID)
    assert response.status_code == 200
    assert response.get_json()["prediction"] in ("Gold", "Silver")


def test_the_form_gets_the_same_label(textbook):
    """The HTML form's fields (strings) give the same answer as the JSON body."""
    form = {name: str(value) for name, value in VALID.items()}
    assert textbook.post("/predict", data=form).get_json() == \
        textbook.post("/predict", json=VALID).get_json()


def test_ping_and_form_page_answer(textbook):
    """The no-model endpoint and the form page answer 200."""
    assert textbook.get("/ping").data == b"ok"
    assert b"<form" in textbook.get("/").data
