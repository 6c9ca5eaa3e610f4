"""A forest's exit leaves for many rows at once, with numpy: the QuickScorer method.

Number each tree's leaves left to right. A split a row fails (x > threshold: it goes right)
rules out every leaf of its left subtree; the leaf the row reaches is the leftmost leaf that no
failed split of its tree rules out. Per feature, the splits a row fails are those whose
threshold is below its value: with the thresholds sorted, a prefix, found by one binary search.
So each feature holds, for every prefix, the AND of its splits' masks per tree; a row's leaves
are the AND over features of one table row each, and the first set bit of each tree's mask.

The comparisons are the trees' own (`x <= threshold` goes left), so the leaves are the ones the
trees' walk reaches; NaN has its own rule (`missing_go_to_left`) and is left to the caller.
Leaf values are summed onto the baseline in the trees' order, as scikit-learn adds them.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

WORD = 64
TABLE_MOST = 32 * 2**20  # bytes of masks beyond which a forest keeps its trees' own walk
BLOCK = 1024  # rows evaluated at once: bounds the gathered masks (features x rows x words)
_LOW = 2**WORD - 1
_ALL = np.uint64(_LOW)


class LeafMasks:
    """The per-feature mask tables of a forest of numeric-split trees."""

    def __init__(self, trees: list[np.ndarray], width: int, baseline: float):
        self._words = -(-max(int(nodes["is_leaf"].sum()) for nodes in trees) // WORD)
        self._trees, self._baseline = len(trees), baseline
        self._offsets = np.arange(len(trees)) * (self._words * WORD)
        self._values = np.zeros(len(trees) * self._words * WORD)
        splits: dict[int, list[tuple[float, int, int]]] = defaultdict(list)
        for tree, nodes in enumerate(trees):
            self._number(nodes, tree, splits)
        # One table for all features (a row per prefix; column word * trees + tree), so that a
        # batch takes its rows in one call; each feature's rows start at its offset.
        self._features: list[tuple[int, np.ndarray, int]] = []
        tables, start = [], 0
        for feature in sorted(splits):
            thresholds, masks = self._table(splits[feature])
            self._features.append((feature, thresholds, start))
            tables.append(masks)
            start += len(masks)
        self._masks = np.concatenate(tables) if tables else None

    def raw(self, matrix: np.ndarray) -> np.ndarray:
        """Baseline plus each tree's leaf value, for rows without NaN."""
        if len(matrix) > BLOCK:
            return np.concatenate([self.raw(matrix[at:at + BLOCK])
                                   for at in range(0, len(matrix), BLOCK)])
        columns = np.ascontiguousarray(matrix.T)
        rows = len(matrix)
        if self._masks is None:  # no tree splits: each one is a single leaf
            alive = np.full((rows, self._trees * self._words), _ALL, dtype=np.uint64)
        else:
            index = np.empty((len(self._features), rows), dtype=np.intp)
            for at, (feature, thresholds, start) in enumerate(self._features):
                np.add(np.searchsorted(thresholds, columns[feature]), start, out=index[at])
            alive = np.bitwise_and.reduce(np.take(self._masks, index, axis=0), axis=0)
        leaf = self._first_set_bit(alive) + self._offsets
        raw = np.full(rows, self._baseline)
        for values in np.take(self._values, leaf.T):  # tree by tree, in order, as the walk adds
            raw += values
        return raw

    def _first_set_bit(self, alive: np.ndarray) -> np.ndarray:
        """The index of the lowest set bit of each (row, tree) mask of several words."""
        # Trailing zeros of each word, as the bits below its lowest set bit: 64 if none is set.
        zeros = np.bitwise_count(~alive & (alive - np.uint64(1)))
        trees = self._trees
        first = zeros[:, :trees]
        leaf = first.astype(np.intp)
        empty = first >> 6  # 1 where this word has no bit set: the leaf is in a later word
        for at in range(1, self._words):
            word = zeros[:, at * trees:(at + 1) * trees]
            leaf += empty * word
            empty &= word >> 6
        return leaf

    @property
    def nbytes(self) -> int:
        """Bytes held by the mask table."""
        return 0 if self._masks is None else self._masks.nbytes

    def _number(self, nodes: np.ndarray, tree: int, splits: dict) -> None:
        """Number the leaves of one tree (their values kept) and collect its splits' masks."""
        first_leaf: dict[int, int] = {}  # node -> the number of its leftmost leaf
        leaves, stack = 0, [0]
        while stack:  # preorder, left before right: leaves come numbered left to right
            node = stack.pop()
            first_leaf[node] = leaves
            if nodes["is_leaf"][node]:
                self._values[self._offsets[tree] + leaves] = nodes["value"][node]
                leaves += 1
            else:
                stack += [int(nodes["right"][node]), int(nodes["left"][node])]
        everything = (1 << (self._words * WORD)) - 1
        for node, first in first_leaf.items():
            if not nodes["is_leaf"][node]:
                after = first_leaf[int(nodes["right"][node])]  # the left subtree ends here
                left_side = (1 << after) - (1 << first)
                splits[int(nodes["feature_idx"][node])].append(
                    (float(nodes["num_threshold"][node]), tree, everything ^ left_side))

    def _table(self, splits: list[tuple[float, int, int]]):
        """Distinct thresholds, ascending, and the masks after failing each prefix of them."""
        splits.sort(key=lambda split: split[0])  # stable: equal thresholds stay together
        thresholds = sorted({threshold for threshold, _, _ in splits})
        masks = np.full((len(thresholds) + 1, self._trees * self._words), _ALL, dtype=np.uint64)
        row = masks[0].copy()
        at = 0
        for k, threshold in enumerate(thresholds):
            while at < len(splits) and splits[at][0] == threshold:
                _, tree, mask = splits[at]
                for word in range(self._words):
                    row[word * self._trees + tree] &= np.uint64(mask >> (WORD * word) & _LOW)
                at += 1
            masks[k + 1] = row
        return np.array(thresholds), masks


def leaf_masks(trees: list[np.ndarray], width: int, baseline: float) -> LeafMasks | None:
    """The mask tables of these trees (their nodes arrays), or None if they would be too big."""
    words = -(-max(int(nodes["is_leaf"].sum()) for nodes in trees) // WORD)
    splits = sum(int((~nodes["is_leaf"].astype(bool)).sum()) for nodes in trees)
    if (splits + width) * len(trees) * words * 8 > TABLE_MOST:
        return None
    return LeafMasks(trees, width, baseline)
