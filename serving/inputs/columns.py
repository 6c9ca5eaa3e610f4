"""A sample's columns as features of a signature: type, bounds, default, categories.

Types come from the pandas dtype: bool -> boolean, integers -> integer, floats -> number, strings
-> category when few distinct values, short; text, dates and anything else are refused, naming
the column (Undescribable).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

MAX_CATEGORIES = 100  # more distinct strings than this: free text, not a category
MAX_CATEGORY_LENGTH = 60


class Undescribable(ValueError):
    """Something in the model or the sample that a signature cannot hold; says which."""


def feature_of(name: str, column: Any, override: Mapping[str, Any]) -> dict[str, Any]:
    """The metadata.json entry of one column, overridden by `override` (min, max, default...)."""
    import pandas as pd

    values = column.dropna()
    if values.empty:
        raise Undescribable(f"column {name!r} has no values in the sample")
    kind = column.dtype
    if pd.api.types.is_bool_dtype(kind):
        feature = {"name": name, "type": "boolean",
                   "default": "true" if values.mode().iloc[0] else "false"}
    elif pd.api.types.is_datetime64_any_dtype(kind) or pd.api.types.is_timedelta64_dtype(kind):
        raise Undescribable(f"column {name!r} holds dates or times: serving takes numbers and "
                            "categories; turn it into numbers (e.g. days since) before fitting")
    elif pd.api.types.is_numeric_dtype(kind):
        feature = _numeric(name, values.astype(np.float64), pd.api.types.is_integer_dtype(kind))
    else:
        feature = _category(name, values)
    return _overridden(feature, override)


def _numeric(name: str, values: Any, integer: bool) -> dict[str, Any]:
    low, high, middle = float(values.min()), float(values.max()), float(values.median())
    if not (np.isfinite(low) and np.isfinite(high)):
        raise Undescribable(f"column {name!r} holds infinite values")
    if integer:
        return {"name": name, "type": "integer", "min": int(low), "max": int(high),
                "default": round(middle), "step": 1}
    return {"name": name, "type": "number", "min": low, "max": high,
            "default": round(middle, 6), "step": _step(values)}


def _step(values: Any) -> float:
    """The form's step: the finest decimal the sample uses (at most 6 places)."""
    for places in range(7):
        if np.allclose(values, np.round(values, places), rtol=0, atol=1e-9):
            return float(10 ** -places)
    return 1e-6


def _category(name: str, values: Any) -> dict[str, Any]:
    if not all(isinstance(v, str) for v in values):
        raise Undescribable(f"column {name!r} mixes strings with other values: make it one "
                            "type before fitting")
    distinct = sorted(set(values))
    if _dates(values):
        raise Undescribable(f"column {name!r} holds dates: serving takes numbers and "
                            "categories; turn it into numbers (e.g. days since) before fitting")
    if len(distinct) > MAX_CATEGORIES or max(map(len, distinct)) > MAX_CATEGORY_LENGTH:
        raise Undescribable(f"column {name!r} holds text ({len(distinct)} distinct values): "
                            f"a category has at most {MAX_CATEGORIES} values of at most "
                            f"{MAX_CATEGORY_LENGTH} characters")
    return {"name": name, "type": "category", "categories": distinct,
            "default": str(values.mode().iloc[0])}


def _dates(values: Any) -> bool:
    """Whether most of a string column parses as dates."""
    import pandas as pd

    head = values.iloc[:50]
    parsed = pd.to_datetime(head, errors="coerce", format="mixed")
    return bool(parsed.notna().mean() > 0.8)


def _overridden(feature: dict[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """The feature with the user's values for label, unit, min, max, default, step."""
    allowed = {"label", "unit", "min", "max", "default", "step"}
    unknown = sorted(set(override) - allowed)
    if unknown:
        raise Undescribable(f"feature {feature['name']!r}: cannot set {', '.join(unknown)} "
                            f"(one of {', '.join(sorted(allowed))})")
    merged = {**feature, **override}
    if "min" in merged and not float(merged["min"]) <= float(merged["default"]) <= \
            float(merged["max"]):
        raise Undescribable(f"feature {feature['name']!r}: default {merged['default']} is not "
                            f"between min {merged['min']} and max {merged['max']}")
    return merged
