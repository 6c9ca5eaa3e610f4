"""The bundled diamonds data set: rows as feature dicts, and the Gold / Silver label of each."""

from __future__ import annotations

import csv
import gzip
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path
from typing import Any

from serving.inputs.schema import DIAMONDS, GOLD_CUTS, LABELS

DATA_PATH = Path(__file__).parents[1] / "data" / "diamonds.csv.gz"  # serving/data/
CATEGORICAL = frozenset(("color", "clarity"))


def label_of(cut: str) -> str:
    """Gold for an Ideal or Premium cut, Silver otherwise."""
    return LABELS[0] if cut in GOLD_CUTS else LABELS[1]


def _parse(lines: Iterable[str]) -> tuple[list[dict[str, Any]], list[str]]:
    rows, labels = [], []
    for record in csv.DictReader(lines):
        rows.append({name: record[name] if name in CATEGORICAL else float(record[name])
                     for name in DIAMONDS.names})
        labels.append(label_of(record["cut"]))
    return rows, labels


def read(path: Path = DATA_PATH) -> tuple[list[dict[str, Any]], list[str]]:
    """Every row as {feature: value} in schema order, and its label."""
    with gzip.open(path, "rt", encoding="utf-8", newline="") as handle:
        return _parse(handle)


@lru_cache(maxsize=4)
def sample(size: int = 200) -> tuple[tuple[dict[str, Any], ...], tuple[str, ...]]:
    """A fixed, evenly spaced sample of the data set (the same rows on every call)."""
    with gzip.open(DATA_PATH, "rt", encoding="utf-8", newline="") as handle:
        header, *lines = handle.read().splitlines()
    step = max(len(lines) // size, 1)
    # Only the chosen lines are parsed: a snapshot check must stay well under a second.
    rows, labels = _parse([header, *lines[::step][:size]])
    return tuple(rows), tuple(labels)
