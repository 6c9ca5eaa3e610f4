"""Golden predictions: a snapshot must answer known inputs as expected before it is served."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from . import dataset
from .errors import InvalidInput
from .schema import LABELS, Schema
from .validation import encode

PROBABILITY_TOLERANCE = 1e-4


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


def check_examples(predictor, schema: Schema, examples: Sequence[Mapping[str, Any]]) -> int:
    """Predict the metadata's golden examples; GoldenFailure unless all labels match."""
    try:
        rows = [example["features"] for example in examples]
        expected = [str(example["label"]) for example in examples]
    except (KeyError, TypeError):
        raise GoldenFailure("golden examples need 'features' and 'label'") from None
    labels, probabilities = predictor.predict(_matrix(schema, rows, "golden examples"))
    wrong = [i for i, (got, want) in enumerate(zip(labels, expected, strict=True)) if got != want]
    if wrong:
        i = wrong[0]
        raise GoldenFailure(f"{len(wrong)} of {len(rows)} golden examples predicted wrongly "
                            f"(#{i}: expected {expected[i]}, got {labels[i]})")
    for i, example in enumerate(examples):
        want = example.get("probability")
        if want is not None and abs(float(want) - probabilities[i]) > PROBABILITY_TOLERANCE:
            raise GoldenFailure(f"golden example #{i}: probability {probabilities[i]:.6f}, "
                                f"expected {float(want):.6f}")
    return len(rows)


def check_sample(predictor, schema: Schema, min_accuracy: float) -> float:
    """Predict the bundled sample; GoldenFailure on invalid labels or too low an accuracy."""
    expected = dataset.sample()[1]
    labels, _ = predictor.predict(sample_matrix(schema))
    unknown = sorted(set(labels) - set(LABELS))
    if unknown:
        raise GoldenFailure(f"the model answers labels {unknown}, expected only {list(LABELS)}")
    accuracy = sum(g == w for g, w in zip(labels, expected, strict=True)) / len(expected)
    if accuracy < min_accuracy:
        raise GoldenFailure(f"accuracy {accuracy:.3f} on {len(expected)} bundled sample rows is "
                            f"below the minimum {min_accuracy:g}")
    return accuracy
