"""Leaf masks reach the leaf a walk of each tree reaches, for hand-made trees of odd shapes."""

from __future__ import annotations

import numpy as np
from sklearn.ensemble._hist_gradient_boosting.common import PREDICTOR_RECORD_DTYPE

from serving.model.leaf_masks import leaf_masks

BASELINE = 0.25


def _tree(*nodes: tuple) -> np.ndarray:
    """Nodes as (feature, threshold, left, right) for a split, or (value,) for a leaf."""
    array = np.zeros(len(nodes), dtype=PREDICTOR_RECORD_DTYPE)
    for i, node in enumerate(nodes):
        if len(node) == 1:
            array["is_leaf"][i], array["value"][i] = 1, node[0]
        else:
            for field, value in zip(("feature_idx", "num_threshold", "left", "right"), node,
                                    strict=True):
                array[field][i] = value
    return array


def _walk(trees: list[np.ndarray], row: np.ndarray) -> float:
    total = BASELINE
    for nodes in trees:
        node = 0
        while not nodes[node]["is_leaf"]:
            split = nodes[node]
            node = split["left"] if row[split["feature_idx"]] <= split["num_threshold"] else \
                split["right"]
        total += nodes[node]["value"]
    return total


def test_single_leaves_unused_features_ties_and_signed_zero():
    """A one-leaf tree, a feature no tree splits on, equal thresholds, -0.0 against 0.0."""
    lopsided = _tree((0, 0.0, 1, 2), (1, 0.5, 3, 4), (1.0,), (0, -1.0, 5, 6), (2.0,), (3.0,),
                     (4.0,))
    balanced = _tree((1, 0.5, 1, 2), (0, 0.0, 3, 4), (0, 2.0, 5, 6), (5.0,), (6.0,), (7.0,),
                     (8.0,))
    trees = [_tree((9.0,)), lopsided, balanced]
    rows = np.array([[x, y, 7.0] for x in (-2.0, -1.0, -0.0, 0.0, 1e-300, 2.0, 3.0)
                     for y in (0.0, 0.5, np.nextafter(0.5, 1), 9.0)])
    masks = leaf_masks(trees, width=3, baseline=BASELINE)
    assert masks is not None
    assert masks.raw(rows).tolist() == [_walk(trees, row) for row in rows]


def test_a_forest_of_single_leaves_answers_their_sum():
    """No split anywhere: every row gets the baseline plus each leaf."""
    masks = leaf_masks([_tree((1.5,)), _tree((-0.5,))], width=2, baseline=BASELINE)
    assert masks.raw(np.zeros((3, 2))).tolist() == [BASELINE + 1.5 - 0.5] * 3
