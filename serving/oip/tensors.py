"""Open Inference Protocol (V2) tensors into rows of features, or V2Error naming the input.

Two forms are taken: one tensor per feature (named after it, shape [N] or [N, 1]: FP64, FP32 or
an integer type for numbers, BYTES for categories), or one 2-D tensor [N, features] in column
order (numbers, or BYTES strings when the schema has categories). The rows are then checked by
serving.inputs.checks, so bounds, categories and NaN are refused with the same rules as
/api/v1/predict; errors name the input.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from serving.inputs.checks import encode, encode_columns
from serving.inputs.schema import CategoricalFeature, Schema

from ..errors import BatchTooLarge, FieldError, InvalidInput
from .wire import NUMBERS, InferRequest, Tensor, V2Error, shown

# The JSON values each datatype takes (bool is not int here: True is not a number of carats).
_PYTHON_TYPES = {"BYTES": frozenset({str}),
                 **{t: frozenset({int, float} if t.startswith("FP") else {int}) for t in NUMBERS}}
_JSON_NUMBER = re.compile(r"-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?\Z")


@dataclass(frozen=True)
class Rows:
    """A request's rows as /api/v1/predict instances, and how its inputs map to features.

    One tensor per feature keeps its columns (feature -> values, in the schema's order; a
    binary section's numbers as their numpy array): the matrix is read from them, and the rows
    are made only when something reads them (MPM, an error to name, another role's schema).
    """

    given: list[dict[str, Any]] | None
    two_d: str | None  # the 2-D tensor's name, or None for one tensor per feature
    columns: dict[str, Sequence[Any]] | None = None

    @cached_property
    def rows(self) -> list[dict[str, Any]]:
        """Every row as an instance {feature: value} (plain Python values, as JSON gives)."""
        if self.given is not None:
            return self.given
        assert self.columns is not None
        names = list(self.columns)
        columns = [c.tolist() if type(c) is np.ndarray else c for c in self.columns.values()]
        return [dict(zip(names, values, strict=True)) for values in zip(*columns, strict=True)]

    @property
    def count(self) -> int:
        """How many rows."""
        if self.given is not None:
            return len(self.given)
        assert self.columns is not None
        return len(next(iter(self.columns.values())))

    def encode(self, schema: Schema) -> np.ndarray:
        """The float matrix for a schema; InvalidInput (as /api/v1 words it) if refused."""
        if self.columns is not None and list(self.columns) == list(schema.names):
            matrix = encode_columns(schema, list(self.columns.values()))
            if matrix is not None:
                return matrix
        given = self.given
        if given is not None:
            return encode(schema, given, single=len(given) == 1)
        return encode(schema, self.rows, single=self.count == 1)

    def matrix(self, schema: Schema) -> np.ndarray:
        """The float matrix for a schema; V2Error naming the input if a value is refused."""
        try:
            return self.encode(schema)
        except InvalidInput as exc:
            raise V2Error(self._explain(exc, schema)) from None

    def _explain(self, exc: InvalidInput, schema: Schema) -> str:
        """One sentence naming each refused value by input and row (first five)."""
        named = [self._name(error, schema) for error in exc.errors[:5]]
        more = len(exc.errors) - len(named)
        return "; ".join(named) + (f"; and {more} more" if more > 0 or exc.truncated else "")

    def _name(self, error: FieldError, schema: Schema) -> str:
        row, _, feature = error.field.rpartition(".")
        index = int(row[len("instances["):-1]) if row else 0
        if self.two_d is None:
            return f"input {shown(feature)} element {index} {error.message}"
        column = schema.names.index(feature) if feature in schema.names else -1
        return f"input {shown(self.two_d)} [{index}, {column}] ({feature}) {error.message}"


def rows_of(request: InferRequest, schema: Schema, max_batch: int) -> Rows:
    """The rows the request's tensors hold for this schema; V2Error naming the input if not."""
    inputs = request.inputs
    if not inputs:
        raise V2Error("inputs must hold one tensor per feature, or one 2-D tensor")
    row = _one_row(inputs, schema)
    if row is not None:
        return Rows([row], None)
    features = _inputs_of(schema).features
    names = schema.names
    if len(inputs) == 1 and inputs[0].name not in names and len(names) > 1:
        return _two_d(inputs[0], schema, max_batch)
    given: dict[str, Sequence[Any]] = {}
    for tensor in inputs:
        feature = features.get(tensor.name)
        if feature is None:
            raise V2Error(f"input {shown(tensor.name)} is not a feature of this model "
                          f"(features: {', '.join(names)})")
        if tensor.name in given:
            raise V2Error(f"input {shown(tensor.name)} is given twice")
        given[tensor.name] = _column(tensor, feature, max_batch)
    missing = [name for name in names if name not in given]
    if missing:
        raise V2Error(f"input {shown(missing[0])} is missing" + (
            f" (and {len(missing) - 1} more: {', '.join(missing[1:])})" if len(missing) > 1
            else ""))
    counts = Counter(map(len, given.values()))
    if len(counts) > 1:
        usual = counts.most_common(1)[0][0]
        odd = next(name for name, column in given.items() if len(column) != usual)
        raise V2Error(f"input {shown(odd)} holds {len(given[odd])} rows where the others hold "
                      f"{usual}: inputs must all hold the same number of rows")
    return Rows(None, None, {name: given[name] for name in names})


@dataclass(frozen=True)
class _Inputs:
    """What a schema's tensors must be: its features by name, and the Python types each
    feature's value may have, by datatype."""

    schema: Schema
    features: dict[str, Any]
    types: dict[str, dict[str, frozenset[type]]]


_inputs: list[_Inputs] = []
_ONE = [1]  # the shape of a one-row tensor


def _inputs_of(schema: Schema) -> _Inputs:
    """The inputs of a schema (kept for the last schema asked: the live model's)."""
    if _inputs and _inputs[0].schema is schema:
        return _inputs[0]
    categories = {"BYTES": _PYTHON_TYPES["BYTES"]}
    numbers = {t: _PYTHON_TYPES[t] for t in NUMBERS}
    made = _Inputs(schema, {feature.name: feature for feature in schema.features},
                   {f.name: categories if isinstance(f, CategoricalFeature) else numbers
                    for f in schema.features})
    _inputs[:] = [made]
    return made


def _one_row(inputs: list[Tensor], schema: Schema) -> dict[str, Any] | None:
    """The row of the common request (one tensor of one well-typed value per feature, shape
    [1]); None at the first doubt, for the path that names what is wrong. A third of the cost.
    """
    types = _inputs_of(schema).types
    if len(inputs) != len(types):
        return None
    row: dict[str, Any] = {}
    for tensor in inputs:
        takes, data = types.get(tensor.name), tensor.data
        if takes is None or tensor.shape != _ONE or data is None or len(data) != 1:
            return None
        value = data[0]
        if type(data) is np.ndarray:  # a binary section's number
            value = value.item()
        if type(value) not in takes.get(tensor.datatype, ()):
            return None
        row[tensor.name] = value
    return row if len(row) == len(types) else None


def _column(tensor: Tensor, feature: Any, max_batch: int) -> Sequence[Any]:
    """One feature's values from its tensor: shape [N] or [N, 1], the feature's datatype."""
    shape = tensor.shape
    if len(shape) not in (1, 2) or (len(shape) == 2 and shape[1] != 1):
        raise V2Error(f"input {shown(tensor.name)}: shape {shape} must be [N] or [N, 1]")
    categorical = isinstance(feature, CategoricalFeature)
    if categorical != (tensor.datatype == "BYTES"):
        wanted = "BYTES (a category)" if categorical else "FP64, FP32 or INT64 (a number)"
        raise V2Error(f"input {shown(tensor.name)}: datatype {shown(tensor.datatype)} must be "
                      f"{wanted}")
    return _elements(tensor, max_batch)


def _two_d(tensor: Tensor, schema: Schema, max_batch: int) -> Rows:
    """The rows of one [N, features] tensor, columns in the schema's order."""
    width, shape = len(schema.features), tensor.shape
    if len(shape) != 2 or shape[1] != width:
        raise V2Error(f"input {shown(tensor.name)}: shape {shape} must be [N, {width}] (one "
                      f"column per feature: {', '.join(schema.names)}), or send one tensor "
                      "per feature")
    categories = [f.name for f in schema.features if isinstance(f, CategoricalFeature)]
    if categories and tensor.datatype != "BYTES":
        raise V2Error(f"input {shown(tensor.name)}: datatype {shown(tensor.datatype)} cannot "
                      f"hold the category {categories[0]}: send BYTES, or one tensor per "
                      "feature")
    values = _elements(tensor, max_batch * width)
    if type(values) is np.ndarray:
        values = values.tolist()
    elif tensor.datatype == "BYTES":
        values = [_number_or_text(v, f) for v, f in zip(values, schema.features * shape[0],
                                                        strict=True)]
    return Rows([dict(zip(schema.names, values[i:i + width], strict=True))
                 for i in range(0, len(values), width)], tensor.name)


def _number_or_text(value: str, feature: Any) -> Any:
    """A BYTES cell of a number column read as the number it writes (else left to be refused)."""
    if isinstance(feature, CategoricalFeature) or not _JSON_NUMBER.match(value):
        return value
    number = float(value)
    return number if math.isfinite(number) else value


def _elements(tensor: Tensor, most: int) -> Sequence[Any]:
    """The tensor's data, flattened, checked against its shape, size bound and datatype."""
    shape = tensor.shape
    if shape[0] < 1 or min(shape) < 0:
        raise V2Error(f"input {shown(tensor.name)}: shape {shape} must hold at least one row")
    size = math.prod(shape)
    if size > most:
        raise BatchTooLarge([FieldError(tensor.name, f"holds {size} values; at most {most} "
                                                     "are allowed")])
    data = tensor.data
    if data is None:
        raise V2Error(f"input {shown(tensor.name)}: data is missing")
    if type(data) is list and data and type(data[0]) is list:  # nested JSON, row-major
        data = [v for row in data for v in (row if type(row) is list else [row])]
    if len(data) != size:
        raise V2Error(f"input {shown(tensor.name)}: shape {shape} needs {size} values; data "
                      f"holds {len(data)}")
    allowed = _PYTHON_TYPES.get(tensor.datatype)
    if allowed is None:
        raise V2Error(f"input {shown(tensor.name)}: datatype {shown(tensor.datatype)} is not "
                      "supported")
    # JSON's values in one C pass (a binary section's are typed by its datatype); the slow walk
    # only to name one.
    if type(data) is list and not allowed.issuperset(map(type, data)):
        i, value = next((i, v) for i, v in enumerate(data) if type(v) not in allowed)
        raise V2Error(f"input {shown(tensor.name)} element {i}: {shown(str(value))} is not of "
                      f"datatype {tensor.datatype}")
    return data
