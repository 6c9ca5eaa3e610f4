"""The HTML pages: a form with valid choices, a result naming the model, errors by the fields."""

from __future__ import annotations

import re

from tests.support.diamonds import VALID


def form(**changes) -> dict[str, str]:
    """The form fields as a browser sends them."""
    return {k: str(v) for k, v in {**VALID, **changes}.items()}


def test_the_form_offers_valid_choices_and_defaults(client):
    """Selects list every color and clarity; numbers have bounds and defaults; no scripts."""
    page = client.get("/")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and page.mimetype == "text/html"
    for value in ("D", "J", "IF", "VVS1", "I1"):
        assert f'<option value="{value}"' in html
    assert re.search(r'<input type="number" id="carat" name="carat" value="0.7"\s+min="0.1" '
                     r'max="6"', html)
    assert "<script" not in html
    assert 'id="model-version">1.0.0<' in html
    assert "script-src" not in page.headers["Content-Security-Policy"]
    assert client.get("/static/style.css").status_code == 200


def test_a_prediction_page_shows_label_probability_and_version(client):
    """POST /predict: the label, its probability and the model version."""
    page = client.post("/predict", data=form())
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    label = re.search(r'id="label">(Gold|Silver)<', html).group(1)
    api = client.post("/api/v1/predict", json=VALID).get_json()
    assert label == api["label"]
    assert f'{api["probability"] * 100:.1f}&nbsp;%' in html
    assert 'id="result-version">1.0.0<' in html and 'id="model-version">1.0.0<' in html
    assert page.headers["X-Model-Version"] == "1.0.0"


def test_invalid_input_shows_errors_by_the_fields_and_keeps_values(client):
    """400: the form again, each error next to its field, what was typed still there."""
    page = client.post("/predict", data=form(carat="99", depth="", price="cheap", color="Z"))
    html = page.get_data(as_text=True)
    assert page.status_code == 400
    assert 'id="carat-error">Carat must be between 0.1 and 6<' in html
    assert 'id="depth-error">Total depth is required<' in html
    assert 'id="price-error">Price must be a number<' in html
    assert 'id="color-error">Color must be one of D, E, F, G, H, I, J<' in html
    assert 'value="99"' in html and 'value="cheap"' in html
    assert 'value="4.32"' in html  # a valid field keeps its value
    assert "4 fields to correct" in html


def test_without_a_model_the_page_says_so(make_app):
    """No model: the form shows a notice and a prediction is a 503 page, not a trace."""
    client = make_app().test_client()
    assert "No model is loaded yet" in client.get("/").get_data(as_text=True)
    page = client.post("/predict", data=form())
    assert page.status_code == 503
    assert "No model is loaded yet" in page.get_data(as_text=True)


def test_browsers_get_html_errors(client):
    """An unknown page asked for by a browser is an HTML 404, with no trace."""
    page = client.get("/nowhere", headers={"Accept": "text/html,application/xhtml+xml"})
    assert page.status_code == 404 and page.mimetype == "text/html"
    assert "Not Found" in page.get_data(as_text=True)
    assert client.get("/nowhere").mimetype == "application/json"


def test_a_bug_on_a_page_is_a_plain_500_page(client, monkeypatch):
    """An unexpected failure renders a friendly page, never a traceback."""
    holder = client.application.extensions["serving.swap.holder"]

    def explode(matrix):
        raise ValueError("internal detail")

    monkeypatch.setattr(holder.live.predictor, "predict", explode)
    page = client.post("/predict", data=form())
    html = page.get_data(as_text=True)
    assert page.status_code == 500 and page.mimetype == "text/html"
    assert "Traceback" not in html and "internal detail" not in html


def test_the_seed_layout_keeps_the_demos_page(make_app, publish, trained_models):
    """The textbook's pickles code categories their own way: still the diamond grader."""
    from devkit.snapshots import seed_models

    publish("1.0.0", models=seed_models(trained_models.seed))
    page = make_app().test_client().post("/predict", data=VALID).get_data(as_text=True)
    assert "Diamond grader" in page and 'id="class-probabilities"' not in page
