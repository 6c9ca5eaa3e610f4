"""The typed Predictions value: what readers get per task, and untrusted answers checked."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import orjson
import pytest

from serving.challenger.comparison import ComparisonLog
from serving.challenger.shadow import ShadowInput, score_all
from serving.challenger.shadow_process import MAX_LABEL_CHARS, answer_limit
from serving.model.predictions import Task, checked, classified, from_json, regressed, to_json


def test_output_keys_and_per_class_probabilities_per_task():
    """MPM's output keys: value and probability for a class, value alone for a number."""
    answer = classified(["b"], [0.7], ("a", "b", "c"), np.array([[0.1, 0.7, 0.2]]))
    assert answer.output(0) == {"value": "b", "probability": 0.7}
    assert answer.per_class(0) == {"a": 0.1, "b": 0.7, "c": 0.2}
    assert regressed([3.5]).output(0) == {"value": 3.5}
    assert regressed([3.5, 1.0]).rows == 2 and regressed([3.5]).per_class(0) is None


@pytest.mark.parametrize("answer", [regressed([float("nan")]), regressed([1.0, 2.0]),
                                    regressed(["x"]), classified(["a"], [0.5], ("a", "b")),
                                    ([1.0], [0.5])])
def test_a_regressors_odd_answers_are_refused(answer):
    """NaN, the wrong count, text, another task's answer, a bare pair: ValueError."""
    with pytest.raises(ValueError):
        checked(answer, 1, Task.REGRESSION)


def test_a_checked_answer_is_plain_lists():
    answer = checked(regressed(np.array([1.5], dtype=np.float32)), 1, Task.REGRESSION)
    assert answer.values == [1.5] and type(answer.values[0]) is float


def test_a_challenger_of_another_task_is_a_failure_never_a_comparison():
    """A regressor in shadow of a classifier: failed samples, no agreement or difference."""
    log = ComparisonLog(10)
    challenger = SimpleNamespace(version="2.0.0", snapshot="s2", schema=SimpleNamespace(
        task=Task.REGRESSION, classes=()))
    item = ShadowInput(challenger, log, np.zeros((1, 2)),
                       classified(["a"], [0.9], ("a", "b")))
    score_all([item], lambda model, matrix: regressed([1.0]))
    _, total = log.figures()
    assert (total.samples, total.errors, total.compared) == (1, 1, 0)


def test_the_class_table_is_every_rows_per_class_in_the_order_asked():
    """V2's `probabilities` tensor, read in one pass, holds per_class's numbers to the bit."""
    rng = np.random.default_rng(0)
    table = rng.dirichlet(np.ones(3), size=50)
    table[0] = [0.1234565, 0.3765435, 0.5]  # halves at the sixth place round as per_class does
    answers = classified(["b"] * 50, [0.5] * 50, ["b", "a", "c"], table)
    order = ["a", "b", "c"]
    assert answers.class_table(order) == [answers.per_class(i)[c]
                                          for i in range(50) for c in order]
    few = classified(["b"] * 3, [0.5] * 3, ["b", "a", "c"], table[:3])  # rounded in Python
    assert few.class_table(order) == [few.per_class(i)[c] for i in range(3) for c in order] \
        == few.class_array(order).ravel().tolist()  # the binary output's numbers
    assert answers.class_array(order).shape == (50, 3)
    assert answers.class_table(["a", "b", "x"]) is None
    assert classified(["b"], [0.5], ["b", "a"]).class_table(["a", "b"]) is None


def test_the_shadow_wire_carries_per_class_probabilities_beyond_two_classes():
    """Three classes and more: every row's probabilities in the schema's class order, read back
    as checked() keeps them; two classes: none (one probability says both); a table of the
    wrong length: left out, the labels kept."""
    order = ("a", "b", "c")
    answer = checked(classified(["c", "a"], [0.5, 0.6], ("c", "a", "b"),
                                [[0.5, 0.2, 0.3], [0.1, 0.6, 0.3]]), 2, Task.CLASSIFICATION)
    wire = json.loads(json.dumps(to_json(answer, order)))
    assert wire["class_probabilities"] == [0.2, 0.3, 0.5, 0.6, 0.3, 0.1]
    back = checked(from_json(wire, order), 2, Task.CLASSIFICATION)
    assert [back.per_class(i) for i in range(2)] == [answer.per_class(i) for i in range(2)]
    assert "class_probabilities" not in to_json(classified(["a"], [0.9], ("a", "b"),
                                                           [[0.9, 0.1]]), ("a", "b"))
    short = from_json({**wire, "class_probabilities": [0.2, 0.3]}, order)
    assert short.class_probabilities is None and short.labels == ["c", "a"]


def test_the_largest_honest_shadow_answer_fits_the_announced_limit():
    """MAX_BATCH rows of 4-byte characters for labels, and 20 classes: within answer_limit."""
    classes = tuple(f"class-{i}" for i in range(20))
    label = "\U0001f48e" * MAX_LABEL_CHARS
    table = np.full((1000, 20), 1e-6)
    table[:, 0] = 0.123457
    answer = classified([label] * 1000, [0.999999] * 1000, classes, table)
    body = orjson.dumps(to_json(answer, classes))
    assert len(body) <= answer_limit(1000, 20)
    assert answer_limit(1000, 2) == answer_limit(1000)  # two classes: no table on the wire
