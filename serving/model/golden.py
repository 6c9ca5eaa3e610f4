"""Golden predictions: a snapshot must answer known inputs as expected before it is served.

A classifier's golden example names its label (and may name its probability, within
PROBABILITY_TOLERANCE); a regressor's names its value, which must be answered within the
metadata's `golden_tolerance` (relative to the value, or absolute below 1; default
VALUE_TOLERANCE).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from serving.errors import InvalidInput
from serving.inputs.checks import encode
from serving.inputs.schema import LABELS, Schema

from . import dataset

PROBABILITY_TOLERANCE = 1e-4
VALUE_TOLERANCE = 1e-6


class GoldenFailure(ValueError):
    """A model answered its golden inputs wrongly (or they could not be asked)."""


def _matrix(schema: Schema, rows: Sequence[Any], what: str):
    try:
        return encode(schema, rows, single=False)
    except InvalidInput as exc:
        raise GoldenFailure(f"{what} do not fit the model's schema: "
                            f"{exc.errors[0].field} {exc.errors[0].message}") from None


def sample_matrix(schema: Schema):
    """The bundled sample rows as the model's matrix (GoldenFailure if they do not fit)."""
    return _matrix(schema, dataset.sample()[0], "the bundled sample rows")


def example_matrix(schema: Schema, examples: Any):
    """The golden examples' inputs as the model's matrix (GoldenFailure if malformed)."""
    try:
        rows = [example["features"] for example in examples]
    except (KeyError, TypeError):
        raise GoldenFailure("golden examples need 'features'") from None
    return _matrix(schema, rows, "golden examples")


def defaults_matrix(schema: Schema):
    """One row: every feature at its default."""
    return _matrix(schema, [schema.defaults()], "the defaults")


def check_examples(predictor, schema: Schema, examples: Sequence[Mapping[str, Any]],
                   tolerance: Any = None) -> int:
    """Predict the metadata's golden examples; GoldenFailure unless all answers match."""
    answer = predictor.predict(example_matrix(schema, examples))
    if schema.regression:
        _check_values(answer.values, examples, tolerance)
    else:
        _check_labels(answer.labels, answer.probabilities, examples)
    return len(examples)


def _check_labels(labels: Sequence[str], probabilities: Sequence[float],
                  examples: Sequence[Mapping[str, Any]]) -> None:
    try:
        expected = [str(example["label"]) for example in examples]
    except (KeyError, TypeError):
        raise GoldenFailure("golden examples of a classifier need 'label'") from None
    wrong = [i for i, (got, want) in enumerate(zip(labels, expected, strict=True)) if got != want]
    if wrong:
        i = wrong[0]
        raise GoldenFailure(f"{len(wrong)} of {len(expected)} golden examples predicted wrongly "
                            f"(#{i}: expected {expected[i]}, got {labels[i]})")
    for i, example in enumerate(examples):
        want = example.get("probability")
        if want is not None and abs(float(want) - probabilities[i]) > PROBABILITY_TOLERANCE:
            raise GoldenFailure(f"golden example #{i}: probability {probabilities[i]:.6f}, "
                                f"expected {float(want):.6f}")


def _check_values(values: Sequence[float], examples: Sequence[Mapping[str, Any]],
                  tolerance: Any) -> None:
    try:
        expected = [float(example["value"]) for example in examples]
        allowed = VALUE_TOLERANCE if tolerance is None else float(tolerance)
    except (KeyError, TypeError, ValueError):
        raise GoldenFailure("golden examples of a regressor need a numeric 'value' (and "
                            "golden_tolerance a number)") from None
    wrong = [i for i, (got, want) in enumerate(zip(values, expected, strict=True))
             if not abs(got - want) <= allowed * max(abs(want), 1.0)]  # NaN is wrong too
    if wrong:
        i = wrong[0]
        raise GoldenFailure(f"{len(wrong)} of {len(expected)} golden examples predicted "
                            f"outside the tolerance {allowed:g} (#{i}: expected "
                            f"{expected[i]:.6g}, got {values[i]:.6g})")


def check_sample(predictor, schema: Schema, min_accuracy: float) -> float:
    """Predict the bundled sample; GoldenFailure on invalid labels or too low an accuracy."""
    expected = dataset.sample()[1]
    labels = predictor.predict(sample_matrix(schema)).labels
    unknown = sorted(set(labels) - set(LABELS))
    if unknown:
        raise GoldenFailure(f"the model answers labels {unknown}, expected only {list(LABELS)}")
    accuracy = sum(g == w for g, w in zip(labels, expected, strict=True)) / len(expected)
    if accuracy < min_accuracy:
        raise GoldenFailure(f"accuracy {accuracy:.3f} on {len(expected)} bundled sample rows is "
                            f"below the minimum {min_accuracy:g}")
    return accuracy
