"""Turning request bodies into the model's float matrix, or into errors naming each field.

The common case (every value valid) is checked column by column with numpy; only a column with
a bad value is walked value by value to say which and why. No pandas on this path.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .errors import BatchTooLarge, FieldError, InvalidInput
from .schema import CategoricalFeature, NumericFeature, Schema

MAX_REPORTED = 100
_NUMBER_TYPES = frozenset((int, float))


def parse_body(body: Any, schema: Schema, max_batch: int) -> tuple[np.ndarray, bool]:
    """The matrix for a JSON body (one instance, or {"instances": [...]}) and whether a batch."""
    if not isinstance(body, dict):
        raise InvalidInput([FieldError("body", 'must be a JSON object: one instance, or '
                                               '{"instances": [...]}')])
    if "instances" not in body:
        return encode(schema, [body], single=True), False
    instances = body["instances"]
    errors = [FieldError(k, "is not allowed beside instances") for k in sorted(body)
              if k != "instances"]
    if not isinstance(instances, list):
        errors.append(FieldError("instances", "must be a list of objects"))
    elif not instances:
        errors.append(FieldError("instances", "must not be empty"))
    elif len(instances) > max_batch:
        raise BatchTooLarge([FieldError("instances", f"holds {len(instances)} instances; "
                                                     f"at most {max_batch} are allowed")])
    if errors:
        raise InvalidInput(errors)
    return encode(schema, instances, single=False), True


def parse_form(form: Mapping[str, str], schema: Schema) -> tuple[dict[str, Any], np.ndarray]:
    """The instance typed into the HTML form (strings) and its matrix; InvalidInput if wrong."""
    instance: dict[str, Any] = {}
    errors: list[FieldError] = []
    for feature in schema.features:
        raw = (form.get(feature.name) or "").strip()
        if isinstance(feature, CategoricalFeature):
            instance[feature.name] = raw
        elif not raw:
            errors.append(FieldError(feature.name, "is required"))
        else:
            try:
                instance[feature.name] = float(raw)
            except ValueError:
                errors.append(FieldError(feature.name, "must be a number"))
    # Fields that failed to convert get a valid stand-in so the rest are still checked.
    checked = {**schema.defaults(), **instance}
    try:
        matrix = encode(schema, [checked], single=True)
    except InvalidInput as exc:
        errors.extend(exc.errors)
    if errors:
        raise InvalidInput(errors)
    return instance, matrix


def encode(schema: Schema, rows: Sequence[Any], single: bool) -> np.ndarray:
    """The (rows x features) float64 matrix; InvalidInput naming every bad field."""
    names = schema.names
    expected = frozenset(names)
    errors: list[tuple[int, int, FieldError]] = []
    for i, row in enumerate(rows):
        if type(row) is not dict:
            errors.append((i, -1, FieldError(f"instances[{i}]", "must be an object")))
        elif row.keys() != expected:
            errors.extend(_shape_errors(row, names, _prefix(i, single), i))
    matrix = np.empty((len(rows), len(names)), dtype=np.float64)
    for j, feature in enumerate(schema.features):
        column = [row.get(feature.name) if type(row) is dict else None for row in rows]
        encoder = _numbers if isinstance(feature, NumericFeature) else _categories
        if not encoder(column, feature, matrix[:, j]):
            errors.extend((i, j, FieldError(_prefix(i, single) + feature.name, message))
                          for i, message in _column_errors(rows, column, feature))
    if errors:
        errors.sort(key=lambda e: (e[0], e[1]))
        raise InvalidInput([e for _, _, e in errors[:MAX_REPORTED]],
                           truncated=len(errors) > MAX_REPORTED)
    return matrix


def _prefix(i: int, single: bool) -> str:
    return "" if single else f"instances[{i}]."


def _shape_errors(row: dict, names: Sequence[str], prefix: str, i: int):
    for j, name in enumerate(names):
        if name not in row:
            yield i, j, FieldError(prefix + name, "is required")
    for key in sorted(map(str, row.keys() - set(names))):
        yield i, len(names), FieldError(prefix + key, "is not a known feature")


def _numbers(column: list[Any], feature: NumericFeature, out: np.ndarray) -> bool:
    """Fill out with the column if every value is a number within bounds; else False."""
    if not set(map(type, column)) <= _NUMBER_TYPES:
        return False
    try:
        values = np.fromiter(column, dtype=np.float64, count=len(column))
    except OverflowError:
        return False
    # NaN fails both comparisons, so it is caught here too.
    if not ((values >= feature.minimum) & (values <= feature.maximum)).all():
        return False
    out[:] = values
    return True


def _categories(column: list[Any], feature: CategoricalFeature, out: np.ndarray) -> bool:
    """Fill out with the codes of the column if every value is a known category; else False."""
    codes = feature.codes
    try:
        out[:] = np.fromiter((codes[v] for v in column), dtype=np.float64, count=len(column))
    except (KeyError, TypeError):
        return False
    return True


def _column_errors(rows: Sequence[Any], column: list[Any], feature):
    """(row, message) for each bad value of a column; absent fields were reported already."""
    for i, (row, value) in enumerate(zip(rows, column, strict=True)):
        if type(row) is dict and feature.name in row:
            message = _value_error(value, feature)
            if message:
                yield i, message


def _value_error(value: Any, feature) -> str | None:
    if isinstance(feature, CategoricalFeature):
        if isinstance(value, str) and value in feature.codes:
            return None
        return "must be one of " + ", ".join(feature.categories)
    if type(value) not in _NUMBER_TYPES:
        return "must be a number"
    bounds = f"must be between {feature.minimum:g} and {feature.maximum:g}"
    try:
        number = float(value)
    except OverflowError:
        return bounds
    if not math.isfinite(number):
        return "must be a finite number"
    return None if feature.minimum <= number <= feature.maximum else bounds
