"""A team's own models: described by `registry-sync describe`, served for their task.

A binary classifier (numbers only: the compiled path), a five-class classifier of the cut and a
price regressor (pipelines taking category strings), each trained from the bundled data.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from devkit.own_models import OwnModel
from devkit.processes import wait_until
from devkit.snapshots import build_snapshot
from registry_sync.cli import main
from tests.serving.test_challenger import _defaults, challenger_of, settle
from tests.support.own_models import own_models  # noqa: F401

KINDS = ("gold", "cut", "price")


def serve(make_app, model_root, kind: OwnModel, folder=None, version="1.0.0", **settings):
    """An app serving one version of a kind (the validator's verdict waited for)."""
    build_snapshot(model_root, {kind.name: folder or kind.folder}, version)
    return make_app(**settings)


def metadata_of(folder) -> dict:
    return json.loads((folder / "metadata.json").read_text())


def test_describe_writes_each_tasks_signature(own_models):  # noqa: F811
    """Task, features in the estimator's order with their types, classes, golden answers."""
    gold, cut, price = (metadata_of(own_models[k].folder) for k in KINDS)
    assert gold["task"] == "classification" and gold["classes"] == ["Gold", "Silver"]
    assert [f["name"] for f in gold["features"]] == ["carat", "depth", "table", "price", "x",
                                                     "y", "z"]
    types = {f["name"]: f["type"] for f in cut["features"]}
    assert types == {"carat": "number", "color": "category", "clarity": "category",
                     "depth": "number", "table": "number", "price": "integer", "x": "number",
                     "y": "number", "z": "number"}
    assert cut["classes"] == ["Fair", "Good", "Ideal", "Premium", "Very Good"]
    color = next(f for f in cut["features"] if f["name"] == "color")
    assert color["categories"] == list("DEFGHIJ")
    carat = next(f for f in price["features"] if f["name"] == "carat")
    data = own_models["price"].sample["carat"]
    assert (carat["min"], carat["max"]) == (data.min(), data.max())
    assert price["task"] == "regression" and price["target"]["unit"] == "USD"
    assert "price" not in {f["name"] for f in price["features"]}
    expected = own_models["price"].estimator.predict(
        own_models["price"].sample.drop(columns=["price"]).loc[[0]])
    assert price["golden"][0]["value"] == pytest.approx(float(expected[0]), rel=1e-9)
    assert price["training"]["r2"] > 0.5 and cut["training"]["accuracy"] > 0.3


def test_describe_refuses_what_it_cannot_describe_naming_the_column(own_models, tmp_path,  # noqa: F811
                                                                     capsys):
    """Text, dates and a column the estimator does not take: exit 1, the column named."""
    kind = own_models["cut"]
    model_file = tmp_path / "cut.skops"
    shutil.copyfile(kind.folder / "pipeline.skops", model_file)
    rows = len(kind.sample)
    cases = {"text": ("color", [f"a colour described in words, #{i}" for i in range(rows)]),
             "dates": ("clarity", [f"2024-01-{1 + i % 28:02d}" for i in range(rows)]),
             "does not take it": ("extra", [1.0] * rows)}
    for said, (column, values) in cases.items():
        sample = kind.sample.copy()
        sample[column] = values
        sample_file = tmp_path / f"{column}.csv"
        sample.to_csv(sample_file, index=False)
        assert main(["describe", str(model_file), str(sample_file), "--target", "cut"]) == 1
        error = capsys.readouterr().err
        assert f"column {column!r}" in error and said in error, error
        assert "Traceback" not in error


@pytest.mark.parametrize("name", KINDS)
def test_each_model_is_served_through_the_api_as_its_estimator_answers(
        own_models, make_app, model_root, name):  # noqa: F811
    """One instance and a batch: the estimator's own answers, in the task's fields."""
    kind = own_models[name]
    client = serve(make_app, model_root, kind).test_client()
    rows = [kind.instance(i) for i in range(5)]
    frame = kind.sample.drop(columns=[kind.target]).iloc[:5]
    single = client.post("/api/v1/predict", json=rows[0])
    batch = client.post("/api/v1/predict", json={"instances": rows})
    assert single.status_code == 200 and batch.status_code == 200, single.get_data()
    described = client.get("/api/v1/model").get_json()
    assert described["task"] == ("regression" if name == "price" else "classification")
    if name == "price":
        expected = kind.estimator.predict(frame)
        assert single.get_json()["value"] == pytest.approx(expected[0], rel=1e-12)
        assert [p["value"] for p in batch.get_json()["predictions"]] == \
            pytest.approx(list(expected), rel=1e-12)
        assert described["target"] == {"label": "price", "unit": "USD"}
        return
    expected = kind.estimator.predict(frame).tolist()
    best = np.round(kind.estimator.predict_proba(frame).max(axis=1), 6).tolist()
    assert single.get_json()["label"] == expected[0]
    answers = batch.get_json()["predictions"]
    assert [p["label"] for p in answers] == expected
    assert [p["probability"] for p in answers] == best
    holder = client.application.extensions["serving.swap.holder"]
    assert holder.require().predictor.fast is (name == "gold"), "compiled where it applies"


@pytest.mark.parametrize("name", KINDS)
def test_bad_input_is_refused_naming_the_field(own_models, make_app, model_root, name):  # noqa: F811
    kind = own_models[name]
    client = serve(make_app, model_root, kind).test_client()
    instance = kind.instance()
    for field, value in (("carat", 1e9), ("carat", "heavy"), ("x", None)):
        answer = client.post("/api/v1/predict", json={**instance, field: value})
        assert answer.status_code == 400
        assert field in json.dumps(answer.get_json()), answer.get_json()
    if name == "cut":
        answer = client.post("/api/v1/predict", json={**instance, "price": instance["price"] + 0.5})
        assert answer.status_code == 400 and "whole number" in answer.get_data(as_text=True)


@pytest.mark.parametrize("name", KINDS)
def test_golden_checks_refuse_a_version_whose_answers_differ(own_models, make_app,  # noqa: F811
                                                            model_root, tmp_path, name):
    """Version 2's model with version 1's golden answers: refused, the reason says which."""
    kind = own_models[name]
    mixed = tmp_path / "mixed"
    shutil.copytree(kind.other, mixed)
    shutil.copyfile(kind.folder / "metadata.json", mixed / "metadata.json")
    client = serve(make_app, model_root, kind, folder=mixed).test_client()
    described = client.get("/api/v1/model").get_json()
    assert described["ready"] is False
    reason = described["last_rejection"]["reason"]
    assert "golden example" in reason, reason
    if name == "price":
        assert "tolerance" in reason


@pytest.mark.parametrize("name", KINDS)
def test_the_form_and_its_result_are_made_from_the_signature(own_models, make_app,  # noqa: F811
                                                             model_root, name):
    """A field per feature; the result: the class with every class's probability, or the value
    with its unit."""
    kind = own_models[name]
    client = serve(make_app, model_root, kind).test_client()
    page = client.get("/").get_data(as_text=True)
    for column in kind.sample.columns.drop(kind.target):
        assert f'name="{column}"' in page
    assert "Diamond grader" not in page and "Gold</strong> (Ideal" not in page
    form = {k: str(v) for k, v in kind.instance().items()}
    result = client.post("/predict", data=form)
    assert result.status_code == 200
    text = result.get_data(as_text=True)
    if name == "price":
        value = kind.estimator.predict(kind.sample.drop(columns=["price"]).iloc[:1])[0]
        assert f"{value:,.2f}" in text and 'id="unit">USD' in text
    else:
        classes = metadata_of(kind.folder)["classes"]
        assert 'id="class-probabilities"' in text
        assert all(f"<th scope=\"row\">{c}</th>" in text for c in classes)


def test_a_model_without_metadata_is_served_if_it_names_its_features(own_models, make_app,  # noqa: F811
                                                                     model_root, tmp_path):
    """feature_names_in_: unbounded numbers, and the page says so; else refused with a reason
    that says how to make the metadata."""
    bare = tmp_path / "bare"
    bare.mkdir()
    shutil.copyfile(own_models["gold"].folder / "pipeline.skops", bare / "pipeline.skops")
    app = serve(make_app, model_root, own_models["gold"], folder=bare)
    client = app.test_client()
    assert 'id="inferred-notice"' in client.get("/").get_data(as_text=True)
    described = client.get("/api/v1/model").get_json()
    assert described["inferred"] is True
    answer = client.post("/api/v1/predict", json={**own_models["gold"].instance(),
                                                  "carat": 1e300})
    assert answer.status_code == 200 and answer.get_json()["label"] in ("Gold", "Silver")


def test_a_model_that_names_no_features_and_has_no_metadata_is_refused(make_app, model_root,
                                                                        tmp_path):
    import skops.io
    from sklearn.linear_model import LinearRegression

    bare = tmp_path / "matrix"
    bare.mkdir()
    skops.io.dump(LinearRegression().fit(np.eye(3), [1.0, 2.0, 3.0]), bare / "pipeline.skops")
    build_snapshot(model_root, {"matrix-model": bare}, "1.0.0")
    described = make_app().test_client().get("/api/v1/model").get_json()
    assert described["ready"] is False
    assert "registry-sync describe" in described["last_rejection"]["reason"]


def test_a_regression_shadow_reports_its_mean_difference(own_models, make_app,  # noqa: F811
                                                         model_root):
    """Version 2 in shadow of version 1: mean absolute and relative differences of the values."""
    from registry_sync.store.publish import publish as publish_link

    kind = own_models["price"]
    build_snapshot(model_root, {"price": kind.folder}, "1.0.0")
    candidate = build_snapshot(model_root, {"price": kind.other}, "1.1.0", publish=False)
    publish_link(model_root, candidate, link="candidate")
    client = settle(make_app(challenger=_defaults())).test_client()
    rows = [kind.instance(i) for i in range(6)]
    for row in rows:
        # buffered: the response is closed, so the input is handed to the shadow
        assert client.post("/api/v1/predict", json=row, buffered=True).status_code == 200

    def total():
        return client.get("/api/v1/model").get_json()["roles"]["challenger"]["shadow"]["total"]

    wait_until(lambda: total()["compared"] == len(rows), timeout=20, what="6 shadow samples")
    frame = kind.sample.drop(columns=["price"]).iloc[:6]
    ours = kind.estimator.predict(frame)
    import skops.io

    theirs = skops.io.load(kind.other / "pipeline.skops",
                           trusted=skops.io.get_untrusted_types(
                               file=kind.other / "pipeline.skops")).predict(frame)
    figures = total()
    assert figures["agreement"] is None and figures["mean_abs_probability_diff"] is None
    assert figures["mean_abs_difference"] == pytest.approx(np.abs(ours - theirs).mean(),
                                                           rel=1e-5)
    relative = np.abs(ours - theirs) / np.maximum(np.abs(ours), 1.0)
    assert figures["mean_relative_difference"] == pytest.approx(relative.mean(), rel=1e-4)
    # all workers' figures are reused for a second: wait for them to include every input
    line = wait_until(lambda: "differs by" in (page := client.get("/").get_data(as_text=True))
                      and page, timeout=10, what="the page's line with the mean difference")
    assert "USD on average" in line



def load_skops(folder):
    import skops.io

    path = folder / "pipeline.skops"
    return skops.io.load(path, trusted=skops.io.get_untrusted_types(file=path))


def test_a_five_class_shadow_reports_the_same_exact_gap_in_its_process_as_in_thread(
        own_models, make_app, model_root):  # noqa: F811
    """Version 2 in shadow of version 1, where they disagree too: agreement, and the gap of
    the probabilities both give the champion's class (the challenger's per-class
    probabilities cross the shadow process's wire), the same in a thread and in its process."""
    import dataclasses

    from registry_sync.store.publish import publish as publish_link

    kind = own_models["cut"]
    build_snapshot(model_root, {"cut": kind.folder}, "1.0.0")
    candidate = build_snapshot(model_root, {"cut": kind.other}, "1.1.0", publish=False)
    publish_link(model_root, candidate, link="candidate")
    frame = kind.sample.drop(columns=["cut"])
    champion, challenger = kind.estimator, load_skops(kind.other)
    labels = [champion.predict(frame), challenger.predict(frame)]
    differ = np.flatnonzero(labels[0] != labels[1])[:4]
    same = np.flatnonzero(labels[0] == labels[1])[:4]
    assert len(differ) == 4, "the two versions never disagree: nothing to show"
    rows = sorted([*differ, *same])
    mine = champion.predict_proba(frame.iloc[rows])
    theirs = challenger.predict_proba(frame.iloc[rows])
    classes = list(champion.classes_)
    at = [classes.index(label) for label in labels[0][rows]]
    gaps = [abs(round(mine[i, c], 6) - round(theirs[i, c], 6)) for i, c in enumerate(at)]
    approximate = [abs(round(mine[i].max(), 6) - round(theirs[i].max(), 6))
                   for i in range(len(rows))]
    assert not np.allclose(gaps, approximate), "the exact gap would not show"

    figures = {}
    for in_process in (False, True):
        settings = dataclasses.replace(_defaults(), shadow_process=in_process)
        client = settle(make_app(challenger=settings)).test_client()
        for row in rows:
            answer = client.post("/api/v1/predict", json=kind.instance(row), buffered=True)
            assert answer.status_code == 200

        def total(client=client):
            return challenger_of(client)["challenger"]["shadow"]["total"]

        wait_until(lambda total=total: total()["samples"] == len(rows), timeout=30,
                   what="every input scored by the challenger")
        figures[in_process] = {k: total()[k] for k in (
            "compared", "agreement", "mean_abs_probability_diff", "errors")}
    assert figures[True] == figures[False]
    assert figures[True]["errors"] == 0 and figures[True]["compared"] == len(rows)
    assert figures[True]["agreement"] == pytest.approx(len(same) / len(rows))
    assert figures[True]["mean_abs_probability_diff"] == pytest.approx(np.mean(gaps), abs=2e-6)

def test_a_training_script_describes_booleans_and_integers_with_the_python_function(
        make_app, model_root, tmp_path):
    """describe() + write_folder() from Python; a boolean is sent as "true"/"false", an
    integer as a whole number, and the model gets a DataFrame of bools and ints."""
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    from serving.model.description import describe, write_folder

    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"flag": rng.random(200) > 0.5, "count": rng.integers(0, 9, 200)})
    target = np.where(frame["flag"] & (frame["count"] > 3), "yes", "no")
    model = LogisticRegression().fit(frame, target)
    metadata = describe(model, frame.assign(answer=target), target="answer")
    assert [(f["name"], f["type"]) for f in metadata["features"]] == [("flag", "boolean"),
                                                                       ("count", "integer")]
    build_snapshot(model_root, {"flags": write_folder(model, metadata, tmp_path / "flags")},
                   "1.0.0")
    client = make_app().test_client()
    answer = client.post("/api/v1/predict", json={"flag": "true", "count": 7})
    expected = model.predict(pd.DataFrame({"flag": [True], "count": [7]}))[0]
    assert answer.status_code == 200 and answer.get_json()["label"] == expected
    refused = client.post("/api/v1/predict", json={"flag": True, "count": 7.5})
    assert {e["field"] for e in refused.get_json()["errors"]} == {"flag", "count"}


def test_describe_refuses_files_it_cannot_use_with_a_reason(own_models, tmp_path, capsys):  # noqa: F811
    """Not an estimator, not fitted, not a model file, not a table, no file: one line, no
    traceback, exit 1 (2 for a missing file)."""
    import pickle

    from sklearn.linear_model import LinearRegression

    sample = own_models["price"].folder.parent / "price.csv"
    (tmp_path / "dict.pkl").write_bytes(pickle.dumps({"weights": [1, 2]}))
    (tmp_path / "unfitted.pkl").write_bytes(pickle.dumps(LinearRegression()))
    (tmp_path / "garbage.skops").write_bytes(b"\x00not a zip" * 10)
    (tmp_path / "binary.csv").write_bytes(b"\xff\xfe\x00\x01" * 50)
    model = own_models["price"].folder / "pipeline.skops"
    cases = [("dict.pkl", sample, 1, "not a scikit-learn estimator"),
             ("unfitted.pkl", sample, 1, "not fitted"),
             ("garbage.skops", sample, 1, "cannot load"),
             (model, tmp_path / "binary.csv", 1, "cannot read it"),
             (model, tmp_path / "missing.csv", 2, "SAMPLE")]
    for model_file, sample_file, code, said in cases:
        path = model_file if isinstance(model_file, type(tmp_path)) else tmp_path / model_file
        assert main(["describe", str(path), str(sample_file), "--target", "price"]) == code
        error = capsys.readouterr().err
        assert said in error and "Traceback" not in error, error


def test_a_regressors_values_reach_the_guards_figures(own_models, make_app, model_root):  # noqa: F811
    """What the promotion guard judges a regressor on: the mean and spread serving counted."""
    from model_contract.manifest import version_set
    from registry_sync.guard.figures import Figures, parse
    from serving.telemetry import metrics as serving_metrics

    def figures() -> Figures:
        text = serving_metrics.render(None)[0].decode()
        return parse(text.splitlines()).get(version_set({kind.name: "1.0.0"}), Figures())

    kind = own_models["price"]
    client = serve(make_app, model_root, kind).test_client()
    before = figures()
    rows = [kind.instance(i) for i in range(5)]
    assert client.post("/api/v1/predict", json={"instances": rows}).status_code == 200
    expected = kind.estimator.predict(kind.sample.drop(columns=[kind.target]).iloc[:5])
    mean, spread = figures().since(before).value_stats()
    assert mean == pytest.approx(expected.mean()) and spread == pytest.approx(expected.std())
