"""The typed answer of a model to some rows: what the API, the page, the comparisons, the golden
checks and monitoring read by name.

A classifier's answer holds, per row, the most probable class (`labels`) and its probability
(`probabilities`, rounded to 6 places), and may hold every class's probability
(`class_probabilities`, rows x `classes`); a regressor's holds one number per row (`values`).
"""

from __future__ import annotations

import enum
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

FEW_ROWS = 8  # up to this many rows, plain Python beats numpy's per-call set-up


class Task(enum.Enum):
    """What a model answers: a class or a number."""

    CLASSIFICATION = "classification"
    REGRESSION = "regression"


@dataclass(frozen=True, slots=True)
class Predictions:
    """One model call's answers, one per row, for its task."""

    task: Task
    labels: Sequence[str] = ()
    probabilities: Sequence[float] = ()
    values: Sequence[float] = ()
    classes: Sequence[str] = ()
    # rows x classes (a numpy array or nested lists), in `classes` order; None when not kept
    class_probabilities: Any = None

    @property
    def rows(self) -> int:
        """How many rows were answered."""
        return len(self.values) if self.task is Task.REGRESSION else len(self.labels)

    def per_class(self, row: int) -> dict[str, float] | None:
        """{class: probability} of one row (rounded to 6 places), or None if not kept."""
        if self.class_probabilities is None:
            return None
        # rint(p * 1e6) / 1e6, as np.round(p, 6) gives `probabilities`: the chosen class's
        # value here is its probability there, to the bit.
        return {str(c): round(float(p) * 1e6) / 1e6
                for c, p in zip(self.classes, self.class_probabilities[row], strict=True)}

    def class_table(self, order: Sequence[str]) -> list[float] | None:
        """Every row's per_class values in the given class order, flattened row by row (the
        same numbers: a few rows as per_class computes them, more in one numpy pass); None if
        not kept or the classes differ."""
        columns = self._columns(order)
        if columns is None:
            return None
        if len(self.class_probabilities) <= FEW_ROWS:  # numpy's set-up would cost more
            try:
                return [round(float(row[i]) * 1e6) / 1e6
                        for row in self.class_probabilities for i in columns]
            except (ValueError, OverflowError):  # not finite: as numpy answers it
                pass
        return self._rounded(columns).ravel().tolist()

    def class_array(self, order: Sequence[str]) -> np.ndarray | None:
        """class_table's numbers as a (rows x classes) float64 array; None as class_table."""
        columns = self._columns(order)
        return None if columns is None else self._rounded(columns)

    def _columns(self, order: Sequence[str]) -> list[int] | None:
        """Where each class of `order` is in `classes`; None if not kept or the classes differ."""
        if self.class_probabilities is None:
            return None
        if self.classes == order and len(set(order)) == len(order):  # the usual case
            return list(range(len(order)))
        names = [str(c) for c in self.classes]
        if sorted(names) != sorted(order) or len(set(names)) != len(names):
            return None
        return [names.index(c) for c in order]

    def _rounded(self, columns: list[int]) -> np.ndarray:
        table = np.asarray(self.class_probabilities, dtype=np.float64)
        return np.rint(table[:, columns] * 1e6) / 1e6

    def output(self, row: int) -> dict[str, Any]:
        """One row's answer in the SDK's output keys: value (and probability for a class)."""
        if self.task is Task.REGRESSION:
            return {"value": self.values[row]}
        return {"value": self.labels[row], "probability": self.probabilities[row]}


def classified(labels: Sequence[str], probabilities: Sequence[float], classes: Sequence[str],
               class_probabilities: Any = None) -> Predictions:
    """A classifier's answers."""
    return Predictions(Task.CLASSIFICATION, labels, probabilities, (), classes,
                       class_probabilities)


def regressed(values: Sequence[float]) -> Predictions:
    """A regressor's answers."""
    return Predictions(Task.REGRESSION, values=values)


def checked(answered: Any, rows: int, task: Task) -> Predictions:
    """An untrusted model's answers as plain lists of finite numbers; ValueError otherwise."""
    # numpy columns would break the answer, NaN would poison the figures, 1e308 rounds to inf
    # (not JSON); float32 becomes a plain number.
    if not isinstance(answered, Predictions):
        raise ValueError(f"an answer of type {type(answered).__name__}, not Predictions")
    if answered.task is not task:
        raise ValueError(f"a {answered.task.value} answer from a {task.value} model")
    if task is Task.REGRESSION:
        values = np.asarray(answered.values, dtype=np.float64)
        if values.shape != (rows,) or not np.isfinite(values).all():
            raise ValueError(f"values of shape {values.shape} for {rows} rows, or not finite")
        return regressed(values.tolist())
    labels = np.asarray(answered.labels)
    probabilities = np.asarray(answered.probabilities, dtype=np.float64)
    if labels.shape != (rows,) or probabilities.shape != (rows,):
        raise ValueError(f"answers of shapes {labels.shape} and {probabilities.shape} "
                         f"for {rows} rows")
    if not ((probabilities >= 0) & (probabilities <= 1)).all():  # NaN fails both
        raise ValueError("probabilities that are not numbers from 0 to 1")
    return classified(labels.astype(str).tolist(), np.round(probabilities, 6).tolist(),
                      tuple(str(c) for c in answered.classes),
                      _checked_per_class(answered, rows))


def _checked_per_class(answered: Predictions, rows: int) -> list[list[float]] | None:
    """The per-class probabilities if well-shaped numbers from 0 to 1, else None (dropped)."""
    if answered.class_probabilities is None:
        return None
    try:
        table = np.asarray(answered.class_probabilities, dtype=np.float64)
    except (TypeError, ValueError):
        return None
    if table.shape != (rows, len(answered.classes)) or \
            not ((table >= 0) & (table <= 1)).all():
        return None
    return np.round(table, 6).tolist()


def to_json(predictions: Predictions, classes: Sequence[str] = ()) -> dict[str, Any]:
    """The answers as JSON lists (the shadow process's wire format: bounded items per row); with
    more than two `classes`, every row's probability of each, in that order, flattened (two
    classes need none: one probability says both)."""
    body = {"task": predictions.task.value, "labels": list(predictions.labels),
            "probabilities": list(predictions.probabilities),
            "values": list(predictions.values)}
    table = predictions.class_table(classes) if len(classes) > 2 else None
    if table is not None:
        body["class_probabilities"] = table
    return body


def from_json(body: dict[str, Any], classes: Sequence[str] = ()) -> Predictions:
    """The answers to_json wrote for these classes; ValueError if malformed (per-class
    probabilities of the wrong length are left out, as checked() leaves out odd ones)."""
    try:
        task = Task(body["task"])
        labels, width = body["labels"], len(classes)
        flat = body.get("class_probabilities")
        table = None
        if width > 2 and isinstance(flat, list) and len(flat) == len(labels) * width:
            table = [flat[i:i + width] for i in range(0, len(flat), width)]
        return Predictions(task, labels, body["probabilities"], body["values"],
                           tuple(classes) if table is not None else (), table)
    except (KeyError, TypeError) as exc:
        raise ValueError(f"a malformed answer: {exc}") from None


def relative_difference(champion: float, challenger: float) -> float:
    """|difference| relative to the champion's value (to 1 when it is below 1 in size)."""
    return abs(champion - challenger) / max(abs(champion), 1.0) if math.isfinite(champion) \
        else 0.0
