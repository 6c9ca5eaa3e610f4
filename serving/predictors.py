"""Predictors: one vectorised call from the validated matrix to labels and probabilities.

PipelinePredictor wraps our layout's scikit-learn Pipeline (classes are the label names);
SeedPredictor chains the seed's scaler, classifier and target LabelEncoder. When the classifier
is a binary HistGradientBoostingClassifier, both answer through its compiled trees
(serving.forest: the same probabilities, bit for bit, without scikit-learn's per-call checks);
otherwise through the estimator's own predict_proba. `fast` says which.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import sklearn

from .forest import compile_forest

# A seed model fitted on a DataFrame warns on every ndarray call; the columns are checked here.
warnings.filterwarnings("ignore", message="X does not have valid feature names")


@dataclass(frozen=True, slots=True)
class Scoring:
    """How a predictor gets probabilities: its fastest exact predict_proba, and a few rows'."""

    proba: Callable[[np.ndarray], np.ndarray]
    # The compiled trees' second-class probabilities of a few rows, in Python (None: not
    # compiled; it answers None for rows it does not take).
    few: Callable[[np.ndarray], list[float] | None] | None

    @property
    def fast(self) -> bool:
        """Whether the compiled trees answer."""
        return self.few is not None

    def best(self, matrix: np.ndarray, classes: np.ndarray) -> tuple[list[str], list[float]]:
        """The most probable class of each row and its probability (rounded to 6 places)."""
        few = self.few(matrix) if self.few is not None else None
        if few is not None:
            return _best_of_two(few, classes)
        return _best(self.proba(matrix), classes)


def _best(proba: np.ndarray, classes: np.ndarray) -> tuple[list[str], list[float]]:
    """The most probable class of each row and its probability."""
    best = proba.argmax(axis=1)
    chosen = proba[np.arange(len(best)), best]
    return classes[best].tolist(), np.round(chosen, 6).tolist()


def _best_of_two(second: list[float], classes: np.ndarray) -> tuple[list[str], list[float]]:
    """As _best, in Python, from each row's probability of the second of two classes."""
    labels, chosen = [], []
    for probability in second:
        first = 1 - probability  # as predict_proba's first column
        pick = 1 if probability > first else 0  # argmax: the first class on a tie
        labels.append(classes[pick])
        # np.round(x, 6) is rint(x * 1e6) / 1e6; round() to an int is rint for these sizes.
        chosen.append(round((probability if pick else first) * 1e6) / 1e6)
    return labels, chosen


def _require_proba(estimator: Any, what: str) -> None:
    if not callable(getattr(estimator, "predict_proba", None)):
        raise TypeError(f"{what} ({type(estimator).__name__}) has no predict_proba")


def _check_width(estimator: Any, width: int, what: str) -> None:
    seen = getattr(estimator, "n_features_in_", width)
    if seen != width:
        raise ValueError(f"{what} expects {seen} features, the schema has {width}")


def _scoring(estimator: Any, compiled: bool = True) -> Scoring:
    """The fastest exact way to an estimator's probabilities (its compiled trees if it can)."""
    forest = compile_forest(estimator) if compiled else None
    if forest is not None:
        return Scoring(forest.predict_proba, forest.positive_of_few)

    def predict_proba(matrix: np.ndarray) -> np.ndarray:
        # Validation already refused non-finite values: skip sklearn's own scan of them.
        with sklearn.config_context(assume_finite=True):
            return estimator.predict_proba(matrix)

    return Scoring(predict_proba, None)


def _confirm(fast: Any, estimator: Any, matrix: np.ndarray) -> bool:
    """True when the compiled path answers the estimator's own probabilities exactly.

    Checked on the whole matrix (the mask tables) and row by row (the Python walk).
    """
    with sklearn.config_context(assume_finite=True):
        expected = estimator.predict_proba(matrix)
    rows = np.concatenate([fast(matrix[i:i + 1]) for i in range(len(matrix))])
    return np.array_equal(fast(matrix), expected) and np.array_equal(rows, expected)


class _Scored:
    """What both layouts share: how they get probabilities, and whether it is compiled."""

    _scoring: Scoring

    @property
    def fast(self) -> bool:
        """Whether the compiled trees answer (not the estimator's own predict_proba)."""
        return self._scoring.fast


class PipelinePredictor(_Scored):
    """Our layout: an estimator taking the feature matrix, whose classes_ are label names."""

    def __init__(self, estimator: Any, width: int):
        _require_proba(estimator, "pipeline")
        _check_width(estimator, width, "pipeline")
        self._estimator = _only_step(estimator)
        self._scoring = _scoring(self._estimator)
        self.classes = np.array([str(c) for c in estimator.classes_], dtype=object)

    def predict(self, matrix: np.ndarray) -> tuple[list[str], list[float]]:
        """Labels and their probabilities, one model call for all rows."""
        return self._scoring.best(matrix, self.classes)

    def confirm_fast(self, matrix: np.ndarray) -> None:
        """Keep the compiled path only if it answers these rows exactly as the estimator."""
        if self.fast and not _confirm(self._scoring.proba, self._estimator, matrix):
            self._scoring = _scoring(self._estimator, compiled=False)


def _only_step(estimator: Any) -> Any:
    """The final estimator of a Pipeline that does nothing else (its own checks cost ~20%)."""
    steps = getattr(estimator, "steps", None)
    if not isinstance(steps, list):
        return estimator
    working = [step for _, step in steps if step not in (None, "passthrough")]
    return working[0] if len(working) == 1 else estimator


class SeedPredictor(_Scored):
    """The seed's layout: standard-scale, classify, decode the class with the target encoder."""

    def __init__(self, model: Any, scaler: Any, label_encoder: Any, width: int):
        _require_proba(model, "model.pkl")
        _check_width(scaler, width, "scaler.pkl")
        _check_width(model, width, "model.pkl")
        self._model, self._scaler = model, scaler
        self._scoring = _scoring(model)
        self._mean, self._scale = _standard_scaling(scaler, width)
        codes = np.asarray(model.classes_).astype(int)
        self.classes = np.array([str(c) for c in label_encoder.inverse_transform(codes)],
                                dtype=object)

    def predict(self, matrix: np.ndarray) -> tuple[list[str], list[float]]:
        """Labels and their probabilities, one model call for all rows."""
        return self._scoring.best(self._scaled(matrix), self.classes)

    def _scaled(self, matrix: np.ndarray) -> np.ndarray:
        if self._mean is not None:
            return (matrix - self._mean) / self._scale
        return self._scaler.transform(matrix)

    def confirm_fast(self, matrix: np.ndarray) -> None:
        """Keep the compiled path only if it answers these rows exactly as the classifier."""
        if self.fast and not _confirm(self._scoring.proba, self._model, self._scaled(matrix)):
            self._scoring = _scoring(self._model, compiled=False)


def _standard_scaling(scaler: Any, width: int) -> tuple[np.ndarray | None, np.ndarray | None]:
    """A StandardScaler's mean and scale as arrays (done in numpy: no per-call checks)."""
    if type(scaler).__name__ != "StandardScaler":
        return None, None
    mean = getattr(scaler, "mean_", None)
    scale = getattr(scaler, "scale_", None)
    mean = np.zeros(width) if mean is None or not scaler.with_mean else np.asarray(mean, float)
    scale = np.ones(width) if scale is None or not scaler.with_std else np.asarray(scale, float)
    return mean, scale
