"""Predictors: one vectorised call from the validated matrix to the typed Predictions.

PipelinePredictor wraps our layout's scikit-learn classifier or Pipeline (classes are the label
names, two or more); RegressorPredictor a regressor; SeedPredictor chains the seed's scaler,
classifier and target LabelEncoder. When the classifier is a binary
HistGradientBoostingClassifier, it answers through its compiled trees (serving.model.forest: the
same probabilities, bit for bit, without scikit-learn's per-call checks); otherwise through the
estimator's own predict_proba (or predict). `fast` says which. An estimator fitted on a
DataFrame (it names its features) gets one, built from the matrix (serving.model.frames).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import sklearn

from .forest import compile_forest
from .predictions import Predictions, classified, regressed

# A seed model fitted on a DataFrame warns on every ndarray call; the columns are checked here.
warnings.filterwarnings("ignore", message="X does not have valid feature names")


@dataclass(frozen=True, slots=True)
class Scoring:
    """How a predictor gets probabilities: its fastest exact predict_proba, and a few rows'."""

    proba: Callable[[Any], np.ndarray]
    # The compiled trees' second-class probabilities of a few rows, in Python (None: not
    # compiled; it answers None for rows it does not take).
    few: Callable[[np.ndarray], list[float] | None] | None

    @property
    def fast(self) -> bool:
        """Whether the compiled trees answer."""
        return self.few is not None

    def best(self, matrix: np.ndarray, classes: np.ndarray, names: tuple[str, ...],
             prepare: Callable[[np.ndarray], Any]) -> Predictions:
        """The most probable class of each row and its probability (rounded to 6 places)."""
        few = self.few(matrix) if self.few is not None else None
        if few is not None:
            labels, chosen = _best_of_two(few, classes)
            return classified(labels, chosen, names, [(1 - p, p) for p in few])
        proba = self.proba(matrix if self.fast else prepare(matrix))
        return classified(*_best(proba, classes), names, proba)


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

    def predict_proba(matrix: Any) -> np.ndarray:
        # Validation already refused non-finite values: skip sklearn's own scan of them.
        with sklearn.config_context(assume_finite=True):
            return estimator.predict_proba(matrix)

    return Scoring(predict_proba, None)


def _confirm(fast: Any, estimator: Any, matrix: np.ndarray, given: Any = None) -> bool:
    """True when the compiled path answers the estimator's own probabilities exactly.

    Checked on the whole matrix (the mask tables) and row by row (the Python walk); `given`:
    the rows as the estimator takes them (a DataFrame), if not the matrix.
    """
    with sklearn.config_context(assume_finite=True):
        expected = estimator.predict_proba(matrix if given is None else given)
    rows = np.concatenate([fast(matrix[i:i + 1]) for i in range(len(matrix))])
    return np.array_equal(fast(matrix), expected) and np.array_equal(rows, expected)


class _Scored:
    """What both layouts share: how they get probabilities, and whether it is compiled."""

    _scoring: Scoring

    @property
    def fast(self) -> bool:
        """Whether the compiled trees answer (not the estimator's own predict_proba)."""
        return self._scoring.fast


def _unchanged(matrix: np.ndarray) -> np.ndarray:
    return matrix


class PipelinePredictor(_Scored):
    """Our layout: a classifier taking the features (a matrix, or a DataFrame built from it),
    whose classes_ are label names."""

    def __init__(self, estimator: Any, width: int,
                 prepare: Callable[[np.ndarray], Any] = _unchanged):
        _require_proba(estimator, "pipeline")
        _check_width(estimator, width, "pipeline")
        self._estimator, self._prepare = _only_step(estimator), prepare
        self._scoring = _scoring(self._estimator)
        self.classes = np.array([str(c) for c in estimator.classes_], dtype=object)
        self._names = tuple(self.classes)

    def predict(self, matrix: np.ndarray) -> Predictions:
        """Labels and their probabilities, one model call for all rows."""
        return self._scoring.best(matrix, self.classes, self._names, self._prepare)

    def confirm_fast(self, matrix: np.ndarray) -> None:
        """Keep the compiled path only if it answers these rows exactly as the estimator."""
        if self.fast and not _confirm(self._scoring.proba, self._estimator, matrix,
                                      self._prepare(matrix)):
            self._scoring = _scoring(self._estimator, compiled=False)


class RegressorPredictor:
    """Our layout's regressor: one number per row from the estimator's own predict."""

    fast = False

    def __init__(self, estimator: Any, width: int,
                 prepare: Callable[[np.ndarray], Any] = _unchanged):
        if not callable(getattr(estimator, "predict", None)):
            raise TypeError(f"pipeline ({type(estimator).__name__}) has no predict")
        _check_width(estimator, width, "pipeline")
        self._estimator, self._prepare = _only_step(estimator), prepare

    def predict(self, matrix: np.ndarray) -> Predictions:
        """One value per row, one model call for all rows."""
        with sklearn.config_context(assume_finite=True):
            values = np.asarray(self._estimator.predict(self._prepare(matrix)), dtype=np.float64)
        return regressed(values.reshape(len(matrix)).tolist())

    def confirm_fast(self, matrix: np.ndarray) -> None:
        """Nothing is compiled for a regressor."""


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
        self._names = tuple(self.classes)

    def predict(self, matrix: np.ndarray) -> Predictions:
        """Labels and their probabilities, one model call for all rows."""
        return self._scoring.best(self._scaled(matrix), self.classes, self._names, _unchanged)

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
