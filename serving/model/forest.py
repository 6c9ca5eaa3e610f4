"""A fitted binary HistGradientBoostingClassifier, evaluated without scikit-learn's per-call checks.

scikit-learn validates its input and sets up its OpenMP loop on every call: about 0.3 ms, ten
times the work of walking 25 trees for one row. `compile_forest(estimator)` reads the fitted trees
(their raw thresholds: binning is only used in training) and answers exactly what the estimator's
`predict_proba` answers, bit for bit: the same comparisons (`x <= threshold`), the leaf values
added onto the baseline in the same order, and the same logistic function (scipy's `expit`,
which scikit-learn's binomial loss calls on numpy arrays). A few rows without NaN walk the trees
in Python, expit too (`positive_of_few`: numpy's set-up per call would cost more than the work);
more rows without NaN find their leaves through mask tables (serving.model.leaf_masks, about 2x
faster than the trees' walk for 1000 rows); rows with NaN call each tree's own compiled predictor,
as `predict_proba` does, minus the checks. Anything else (categorical splits, several
trees per iteration, a column preprocessor) is not compiled: `compile_forest` answers None and
the caller keeps the estimator's `predict_proba`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy.special import expit

from .leaf_masks import leaf_masks

SMALL_BATCH = 8  # up to this many rows, the Python walk beats the mask tables (~0.09 ms set-up)


class CompiledForest:
    """The trees of a fitted binary HistGradientBoostingClassifier, ready to answer fast."""

    def __init__(self, estimator: Any):
        self._baseline = float(np.asarray(estimator._baseline_prediction).reshape(-1)[0])
        self.width = int(estimator.n_features_in_)
        self._predictors = [iteration[0] for iteration in estimator._predictors]
        self._known_categories = estimator._bin_mapper.make_known_categories_bitsets()
        self._trees = [_flatten(predictor.nodes) for predictor in self._predictors]
        self._masks = leaf_masks([predictor.nodes for predictor in self._predictors], self.width,
                                 self._baseline)

    def predict_proba(self, matrix: np.ndarray) -> np.ndarray:
        """Class probabilities of each row, as the estimator's predict_proba gives them."""
        matrix = np.asarray(matrix, dtype=np.float64)
        if matrix.ndim != 2 or matrix.shape[1] != self.width:
            raise ValueError(f"expected a matrix of {self.width} columns, got {matrix.shape}")
        few = self.positive_of_few(matrix)
        proba = np.empty((len(matrix), 2), dtype=np.float64)
        if few is not None:
            proba[:, 1] = few
        elif self._masks is not None and not np.isnan(matrix).any():
            proba[:, 1] = expit(self._masks.raw(matrix))
        else:
            proba[:, 1] = expit(self._raw_compiled(matrix))
        # As HalfBinomialLoss.predict_proba: the positive class first, the other as 1 - it.
        proba[:, 0] = 1 - proba[:, 1]
        return proba

    def positive_of_few(self, matrix: np.ndarray) -> list[float] | None:
        """P(second class) of up to SMALL_BATCH rows without NaN, in Python; else None."""
        # Same bits as predict_proba: the trees walked, scipy's expit done as scipy does it.
        if matrix.ndim != 2 or matrix.shape[1] != self.width or len(matrix) > SMALL_BATCH:
            return None  # predict_proba takes it (and refuses a wrong shape)
        rows = matrix.tolist()
        if any(value != value for row in rows for value in row):  # NaN: the compiled path
            return None
        return [_expit(self._walk(row)) for row in rows]

    def _walk(self, row: list[float]) -> float:
        """The raw score of one row: baseline plus each tree's leaf, in the trees' order."""
        total = self._baseline
        for feature, threshold, left, right, value in self._trees:
            node = 0
            column = feature[0]
            while column >= 0:
                node = left[node] if row[column] <= threshold[node] else right[node]
                column = feature[node]
            total += value[node]
        return total

    def _raw_compiled(self, matrix: np.ndarray) -> np.ndarray:
        """The raw scores from each tree's compiled predictor (NaN-aware), single-threaded."""
        raw = np.zeros(len(matrix), dtype=np.float64)
        raw += self._baseline
        bitsets, feature_map = self._known_categories
        for predictor in self._predictors:
            raw += predictor.predict(matrix, bitsets, feature_map, 1)
        return raw


def _expit(raw: float) -> float:
    """scipy's expit of one float64: 1 / (1 + exp(-x)) with the C library's exp, as math's."""
    try:
        return 1.0 / (1.0 + math.exp(-raw))
    except OverflowError:  # exp(-raw) past the largest float: scipy's exp gives inf, so 0
        return 0.0


def _flatten(nodes: np.ndarray) -> tuple[list[int], list[float], list[int], list[int], list[float]]:
    """A tree's nodes as lists: split column (-1 at a leaf), threshold, children, value."""
    feature = np.where(nodes["is_leaf"].astype(bool), -1, nodes["feature_idx"]).tolist()
    return (feature, nodes["num_threshold"].tolist(), nodes["left"].tolist(),
            nodes["right"].tolist(), nodes["value"].tolist())


def compile_forest(estimator: Any) -> CompiledForest | None:
    """The compiled trees of a supported estimator, or None to keep its own predict_proba."""
    loss = getattr(estimator, "_loss", None)
    if type(estimator).__name__ != "HistGradientBoostingClassifier" or \
            type(loss).__name__ != "HalfBinomialLoss" or \
            type(getattr(loss, "link", None)).__name__ != "LogitLink":
        return None
    try:
        iterations = estimator._predictors
        supported = (
            estimator.n_trees_per_iteration_ == 1
            and getattr(estimator, "_preprocessor", None) is None
            and getattr(estimator, "is_categorical_", None) is None
            and all(len(trees) == 1 and not trees[0].nodes["is_categorical"].any()
                    for trees in iterations))
        return CompiledForest(estimator) if supported else None
    except (AttributeError, KeyError, TypeError, ValueError, IndexError):
        return None  # fitted by a scikit-learn whose internals differ: stay on its own path
