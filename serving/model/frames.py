"""The rows as an estimator fitted on a pandas DataFrame takes them: its columns, its types.

Validation makes a float64 matrix (categories as codes); an estimator that names its features
(`feature_names_in_`: a ColumnTransformer choosing columns by name, a OneHotEncoder on strings)
needs a DataFrame of those columns, with the category strings back and whole numbers as int64.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from serving.inputs.schema import CategoricalFeature, Schema


def names_in(estimator: Any) -> list[str] | None:
    """The feature names an estimator was fitted with, or None (fitted on a matrix)."""
    names = getattr(estimator, "feature_names_in_", None)
    return None if names is None else [str(n) for n in names]


def frame_builder(schema: Schema) -> Callable[[np.ndarray], Any]:
    """A function from the validated matrix to the DataFrame the estimator was fitted on."""
    import pandas as pd  # only for estimators that need it: not on the demo model's path

    columns: list[tuple[str, Callable[[np.ndarray], Any]]] = []
    for feature in schema.features:
        if isinstance(feature, CategoricalFeature):
            by_code = {code: value for value, code in feature.codes.items()}
            lookup = np.array([by_code[float(i)] for i in range(len(by_code))], dtype=object)
            if feature.boolean:
                columns.append((feature.name, lambda c, t=lookup: t[c.astype(int)] == "true"))
            else:
                columns.append((feature.name, lambda c, t=lookup: t[c.astype(int)]))
        elif feature.integer:
            columns.append((feature.name, lambda c: c.astype(np.int64)))
        else:
            columns.append((feature.name, lambda c: c))

    def build(matrix: np.ndarray) -> Any:
        return pd.DataFrame({name: convert(matrix[:, j])
                             for j, (name, convert) in enumerate(columns)})

    return build
