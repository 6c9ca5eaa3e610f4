"""The compiled trees answer exactly what scikit-learn answers, on the whole data set."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from scipy.special import expit
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.tree import DecisionTreeClassifier

from serving.inputs.checks import encode
from serving.inputs.schema import DIAMONDS
from serving.model import forest, leaf_masks
from serving.model.loader import _load_skops
from serving.model.predictors import PipelinePredictor, SeedPredictor

ROWS_IN_DATA_SET = 53_940


@pytest.fixture(scope="module")
def pipeline(trained_models):
    """Our layout's fitted Pipeline."""
    return _load_skops(trained_models.pipeline / "pipeline.skops")


@pytest.fixture(scope="module")
def matrix(diamonds):
    """The whole data set as our layout's float matrix."""
    rows, _ = diamonds
    return encode(DIAMONDS, rows, single=False)


@pytest.fixture(scope="module")
def seed(trained_models):
    """The seed layout's five unpickled artifacts, by role."""
    names = {"model": "model.pkl", "scaler": "scaler.pkl", "labels": "labelEncoder.pkl",
             "color": "colorFeatureLabelEncoder.pkl", "clarity": "clarityFeatureLabelEncoder.pkl"}
    return {role: pickle.loads(next(trained_models.seed.rglob(name)).read_bytes())
            for role, name in names.items()}


def test_the_whole_data_set_is_used(matrix):
    """The equality tests below run on every row."""
    assert matrix.shape == (ROWS_IN_DATA_SET, len(DIAMONDS.features))


def test_compiled_batch_is_bit_identical_to_predict_proba(pipeline, matrix):
    """All rows at once (the leaf-mask tables, two words per tree): the same float64 bits."""
    compiled = forest.compile_forest(pipeline.steps[-1][1])
    assert compiled is not None
    assert np.array_equal(compiled.predict_proba(matrix), pipeline.predict_proba(matrix))


def test_compiled_single_rows_are_bit_identical_to_predict_proba(pipeline, matrix):
    """Row by row (the Python walk of the trees): the same float64 bits on every row."""
    compiled = forest.compile_forest(pipeline.steps[-1][1])
    expected = pipeline.predict_proba(matrix)
    small = forest.SMALL_BATCH
    got = np.concatenate([compiled.predict_proba(matrix[i:i + small])
                          for i in range(0, len(matrix), small)])
    assert np.array_equal(got, expected)


def test_served_labels_and_probabilities_equal_the_pipelines(pipeline, matrix):
    """PipelinePredictor (compiled): the pipeline's labels and rounded probabilities, in
    numpy for all rows at once and in Python a few at a time."""
    predictor = PipelinePredictor(pipeline, matrix.shape[1])
    assert predictor.fast
    expected_labels = pipeline.predict(matrix).tolist()
    expected = np.round(pipeline.predict_proba(matrix).max(axis=1), 6).tolist()
    answers = predictor.predict(matrix)
    assert (answers.labels, answers.probabilities) == (expected_labels, expected)
    few = [predictor.predict(matrix[i:i + forest.SMALL_BATCH])
           for i in range(0, len(matrix), forest.SMALL_BATCH)]
    assert [label for answer in few for label in answer.labels] == expected_labels
    assert [value for answer in few for value in answer.probabilities] == expected


def test_a_few_rows_in_python_keep_the_extremes_of_expit(pipeline, matrix):
    """Raw scores past exp's range give 0 and 1 as scipy's expit does, not an OverflowError."""
    compiled = forest.compile_forest(pipeline.steps[-1][1])
    for shift in (-1e6, 1e6, -745.0, 710.0):
        compiled._baseline = shift
        raw = np.array([compiled._walk(row) for row in matrix[:3].tolist()])
        assert compiled.positive_of_few(matrix[:3]) == expit(raw).tolist()


def test_seed_layout_is_compiled_and_equal_to_the_textbook_chain(seed, diamonds):
    """Scaler + compiled classifier + target encoder: the textbook's labels on every row."""
    rows, _ = diamonds
    schema = DIAMONDS.with_codes({"color": seed["color"].classes_,
                                  "clarity": seed["clarity"].classes_})
    coded = encode(schema, rows, single=False)
    predictor = SeedPredictor(seed["model"], seed["scaler"], seed["labels"], coded.shape[1])
    assert predictor.fast
    scaled = seed["scaler"].transform(coded)
    expected = seed["labels"].inverse_transform(seed["model"].predict(scaled)).tolist()
    answers = predictor.predict(coded)
    assert answers.labels == expected
    best = seed["model"].predict_proba(scaled).max(axis=1)
    assert answers.probabilities == np.round(best, 6).tolist()


def test_missing_values_follow_the_trees_missing_branch(pipeline, matrix):
    """NaN goes where each split sends missing values, exactly as scikit-learn does."""
    holed = matrix[:500].copy()
    holed[::3, 0] = np.nan
    holed[1::3, 5] = np.nan
    compiled = forest.compile_forest(pipeline.steps[-1][1])
    expected = pipeline.predict_proba(holed)
    assert np.array_equal(compiled.predict_proba(holed), expected)
    assert np.array_equal(compiled.predict_proba(holed[:2]), expected[:2])


def test_other_forest_shapes_are_bit_identical(pipeline, matrix, diamonds, monkeypatch):
    """One mask word per tree (at most 64 leaves), and a forest too big for masks (its walk)."""
    _, labels = diamonds
    sample, target = matrix[:3000], np.asarray(labels[:3000]) == labels[0]
    small = HistGradientBoostingClassifier(max_iter=8, max_leaf_nodes=40).fit(sample, target)
    compiled = forest.compile_forest(small)
    assert compiled._masks is not None
    assert np.array_equal(compiled.predict_proba(matrix), small.predict_proba(matrix))
    monkeypatch.setattr(leaf_masks, "TABLE_MOST", 0)
    walked = forest.compile_forest(pipeline.steps[-1][1])
    assert walked._masks is None
    some = matrix[:2000]
    assert np.array_equal(walked.predict_proba(some), pipeline.predict_proba(some))


def test_unsupported_estimators_keep_their_own_predict_proba(matrix, diamonds):
    """Other estimators (here a decision tree, a 3-class HGB) are not compiled."""
    _, labels = diamonds
    sample, target = matrix[:3000], labels[:3000]
    tree = DecisionTreeClassifier(max_depth=4, random_state=0).fit(sample, target)
    three = np.where(sample[:, 1] < 2, "a", np.where(sample[:, 1] < 4, "b", "c"))
    multi = HistGradientBoostingClassifier(max_iter=5).fit(sample, three)
    for estimator in (tree, multi):
        assert forest.compile_forest(estimator) is None
    predictor = PipelinePredictor(tree, matrix.shape[1])
    assert not predictor.fast
    assert predictor.predict(sample[:10]).labels == tree.predict(sample[:10]).tolist()


def test_a_compiled_path_that_disagrees_is_dropped(pipeline, matrix, monkeypatch):
    """confirm_fast falls back to scikit-learn when the compiled answers differ."""
    predictor = PipelinePredictor(pipeline, matrix.shape[1])
    compiled = predictor._scoring.proba.__self__
    compiled._baseline += 1e-9  # trees read wrongly: every answer off in its last bits
    assert predictor.fast
    predictor.confirm_fast(matrix[:50])
    assert not predictor.fast
    assert predictor.predict(matrix[:50]).labels == pipeline.predict(matrix[:50]).tolist()


EXTREMES = [1e308, -1e308, 5e-324, -5e-324, 2.2250738585072014e-308, -0.0, float("inf"),
            float("-inf")]


@pytest.mark.parametrize("rows", [1, 8, 9])
def test_extreme_values_get_the_same_bits_in_python_and_in_numpy(pipeline, matrix, rows):
    """Huge, subnormal, signed-zero and infinite features (past validation's ranges): the
    few-rows walk answers what the trees' compiled predictors answer, bit for bit."""
    compiled = forest.compile_forest(pipeline.steps[-1][1])
    for column in range(compiled.width):
        for value in EXTREMES:
            odd = matrix[:rows].copy()
            odd[:, column] = value
            assert np.array_equal(compiled.predict_proba(odd)[:, 1],
                                  expit(compiled._raw_compiled(odd))), (column, value)


@pytest.mark.parametrize("rows", [1, 8, 9])
def test_extreme_finite_values_are_served_as_the_pipeline_answers(pipeline, matrix, rows):
    """Labels and rounded probabilities of the served path equal the pipeline's, 8 rows in
    Python and 9 in numpy alike."""
    predictor = PipelinePredictor(pipeline, matrix.shape[1])
    for column in range(matrix.shape[1]):
        for value in EXTREMES[:6]:
            odd = matrix[:rows].copy()
            odd[:, column] = value
            expected = np.round(pipeline.predict_proba(odd).max(axis=1), 6).tolist()
            answers = predictor.predict(odd)
            assert (answers.labels, answers.probabilities) == \
                (pipeline.predict(odd).tolist(), expected)
