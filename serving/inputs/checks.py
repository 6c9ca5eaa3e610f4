"""Turning request bodies into the model's float matrix, or into errors naming each field.

The common case (every value valid) is checked column by column with numpy; only a column with
a bad value is walked value by value to say which and why. No pandas on this path.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from operator import itemgetter
from typing import Any

import numpy as np

from serving.errors import BatchTooLarge, FieldError, InvalidInput

from .schema import CategoricalFeature, NumericFeature, Schema

MAX_REPORTED = 100
SMALL_BATCH = 8  # up to this many rows, plain Python beats numpy's per-column set-up
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
    if len(rows) <= SMALL_BATCH:
        matrix = _encode_small(schema, rows)
        if matrix is not None:
            return matrix
    names = schema.names
    columns = _complete_columns(rows, names)
    errors: list[tuple[int, int, FieldError]] = []
    if columns is None:
        errors = _row_errors(rows, names, single)
        columns = [[row.get(name) if type(row) is dict else None for row in rows]
                   for name in names]
    matrix = np.empty((len(rows), len(names)), dtype=np.float64)
    for j, (feature, column) in enumerate(zip(schema.features, columns, strict=True)):
        encoder = _numbers if isinstance(feature, NumericFeature) else _categories
        if not encoder(column, feature, matrix[:, j]):
            errors.extend((i, j, FieldError(_prefix(i, single) + feature.name, message))
                          for i, message in _column_errors(rows, column, feature))
    if errors:
        errors.sort(key=lambda e: (e[0], e[1]))
        raise InvalidInput([e for _, _, e in errors[:MAX_REPORTED]],
                           truncated=len(errors) > MAX_REPORTED)
    return matrix


def encode_columns(schema: Schema, columns: Sequence[Sequence[Any]]) -> np.ndarray | None:
    """The matrix of columns given in the schema's order (values as encode takes them, or a
    numpy array of numbers), or None if any value is refused: encode on the rows then names
    each one."""
    matrix = np.empty((len(columns[0]), len(columns)), dtype=np.float64)
    for j, (feature, column) in enumerate(zip(schema.features, columns, strict=True)):
        encoder = _numbers if isinstance(feature, NumericFeature) else _categories
        if not encoder(column, feature, matrix[:, j]):
            return None
    return matrix


def _row_errors(rows: Sequence[Any], names: Sequence[str], single: bool) -> list:
    """(row, column, error) for rows that are not objects or lack / add fields."""
    expected = frozenset(names)
    errors: list[tuple[int, int, FieldError]] = []
    for i, row in enumerate(rows):
        if type(row) is not dict:
            errors.append((i, -1, FieldError(f"instances[{i}]", "must be an object")))
        elif row.keys() != expected:
            errors.extend(_shape_errors(row, names, _prefix(i, single), i))
    return errors


def _complete_columns(rows: Sequence[Any], names: Sequence[str]) -> list[tuple] | None:
    """Each feature's values if every row is an object with exactly the features, else None.

    Checked and transposed in C (a missing key raises KeyError, an extra one changes the
    count): per-row Python would cost more than the model on a 1000-row batch.
    """
    if len(names) < 2 or set(map(type, rows)) != {dict} or \
            sum(map(len, rows)) != len(rows) * len(names):
        return None
    try:
        return list(zip(*map(itemgetter(*names), rows), strict=True))
    except KeyError:
        return None


def _encode_small(schema: Schema, rows: Sequence[Any]) -> np.ndarray | None:
    """The matrix of a few valid rows, value by value; None at the first doubt."""
    expected = schema.name_set
    values: list[float] = []
    for row in rows:
        if type(row) is not dict or row.keys() != expected:
            return None
        for feature in schema.features:
            value = row[feature.name]
            if isinstance(feature, NumericFeature):
                # NaN fails the comparison; huge ints compare exactly, without overflow.
                if type(value) not in _NUMBER_TYPES or \
                        not feature.minimum <= value <= feature.maximum or \
                        (feature.integer and value != int(value)):
                    return None
                values.append(float(value))
            else:
                code = feature.codes.get(value) if type(value) is str else None
                if code is None:
                    return None
                values.append(code)
    return np.array(values, dtype=np.float64).reshape(len(rows), len(schema.features))


def _prefix(i: int, single: bool) -> str:
    return "" if single else f"instances[{i}]."


def _shape_errors(row: dict, names: Sequence[str], prefix: str, i: int):
    for j, name in enumerate(names):
        if name not in row:
            yield i, j, FieldError(prefix + name, "is required")
    for key in sorted(map(str, row.keys() - set(names))):
        yield i, len(names), FieldError(prefix + key, "is not a known feature")


def _numbers(column: Sequence[Any], feature: NumericFeature, out: np.ndarray) -> bool:
    """Fill out with the column if every value is a number within bounds; else False.

    A numpy column (numbers read from a binary section) is already typed: converted as is.
    """
    if type(column) is np.ndarray:
        values = column.astype(np.float64)
    elif not set(map(type, column)) <= _NUMBER_TYPES:
        return False
    else:
        try:
            values = np.fromiter(column, dtype=np.float64, count=len(column))
        except OverflowError:
            return False
    # NaN fails both comparisons, so it is caught here too.
    if not ((values >= feature.minimum) & (values <= feature.maximum)).all():
        return False
    if feature.integer and not (values == np.floor(values)).all():
        return False
    out[:] = values
    return True


def _categories(column: Sequence[Any], feature: CategoricalFeature, out: np.ndarray) -> bool:
    """Fill out with the codes of the column if every value is a known category; else False."""
    codes = feature.codes
    # A binary section's strings (serving.oip.wire.Strings) find their codes themselves, in
    # numpy (an isinstance check of a Protocol would cost more than that).
    coded = getattr(column, "codes", None)
    if coded is not None and (found := coded(codes)) is not None:
        out[:] = found
        return True
    try:
        out[:] = np.fromiter(map(codes.__getitem__, column), np.float64, len(column))
    except (KeyError, TypeError):
        return False
    return True


def _column_errors(rows: Sequence[Any], column: Sequence[Any], feature):
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
    if not feature.minimum <= number <= feature.maximum:
        return bounds if feature.bounded else "must be a finite number"
    return "must be a whole number" if feature.integer and number != int(number) else None
