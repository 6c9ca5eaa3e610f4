"""A model's signature, made from the model and a sample of its data: the metadata.json serving
needs, written by `registry-sync describe` or by a training script.

    from serving.model.description import describe, write_folder
    metadata = describe(pipeline, frame, target="price", unit="USD")
    write_folder(pipeline, metadata, Path("out"))  # out/pipeline.skops + out/metadata.json

The features are the estimator's own (`feature_names_in_`, in its order) or, for an estimator
fitted on a matrix, the sample's numeric columns; their types, bounds and defaults come from the
sample (serving.inputs.columns), golden examples are answered by the model through serving's own
predictor, so the model that is served must answer them again.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import sklearn

from serving.inputs.checks import encode
from serving.inputs.columns import Undescribable, feature_of
from serving.inputs.schema import from_metadata

from . import frames, signature
from .loader import METADATA, load_estimator
from .predictions import Task

GOLDEN_EXAMPLES = 8
GOLDEN_TOLERANCE = 1e-6


def read_sample(path: Path) -> Any:
    """A CSV or Parquet file as a DataFrame; Undescribable if neither can be read."""
    import pandas as pd

    suffix = "".join(path.suffixes[-2:]).lower()
    try:
        if suffix.endswith(".parquet"):
            return pd.read_parquet(path)
        return pd.read_csv(path)
    except ImportError as exc:
        raise Undescribable(f"{path.name}: reading Parquet needs pyarrow ({exc})") from None
    except (OSError, ValueError) as exc:
        raise Undescribable(f"{path.name}: cannot read it as CSV or Parquet: {exc}") from None


def _features_in(estimator: Any, sample: Any, target: str | None) -> list[str]:
    """The estimator's features in its order; Undescribable naming a column that differs."""
    columns = [str(c) for c in sample.columns if str(c) != target]
    if target is not None and target not in map(str, sample.columns):
        raise Undescribable(f"column {target!r} (--target) is not in the sample")
    names = frames.names_in(estimator)
    if names is None:
        width = getattr(estimator, "n_features_in_", len(columns))
        if width != len(columns):
            raise Undescribable(f"the estimator takes {width} features, the sample has "
                                f"{len(columns)} columns besides the target: {columns}")
        return columns
    extra = [c for c in columns if c not in names]
    if extra:
        raise Undescribable(f"column {extra[0]!r}: the estimator does not take it (drop it "
                            "from the sample, or name it with --target)")
    missing = [n for n in names if n not in columns]
    if missing:
        raise Undescribable(f"column {missing[0]!r}: the estimator takes it, the sample "
                            "lacks it")
    return names


def describe(estimator: Any, sample: Any, target: str | None = None, unit: str = "",
             overrides: Mapping[str, Mapping[str, Any]] | None = None,
             golden: int = GOLDEN_EXAMPLES) -> dict[str, Any]:
    """The metadata.json of a fitted estimator and a DataFrame sample of its data."""
    _require_fitted(estimator)
    if golden < 1:
        raise Undescribable(f"golden examples: {golden}; at least one is needed")
    overrides = overrides or {}
    unknown = sorted(set(overrides) - set(map(str, sample.columns)))
    if unknown:
        raise Undescribable(f"column {unknown[0]!r} (an override) is not in the sample")
    names = _features_in(estimator, sample, target)
    matrix_input = frames.names_in(estimator) is None
    features = []
    for name in names:
        feature = feature_of(name, sample[name], overrides.get(name, {}))
        if matrix_input and feature["type"] in ("category", "boolean"):
            raise Undescribable(f"column {name!r} holds {feature['type']} values, and the "
                                "estimator was fitted on a matrix: fit it on a DataFrame (so "
                                "it names its columns) or give it numbers")
        features.append(feature)
    task = signature.task_of(estimator)
    metadata: dict[str, Any] = {"format": 1, "task": task.value, "features": features}
    if task is Task.CLASSIFICATION:
        metadata["classes"] = [str(c) for c in estimator.classes_]
    else:
        metadata["target"] = {"name": target or "value", "label": target or "Value",
                              "unit": unit}
        metadata["golden_tolerance"] = GOLDEN_TOLERANCE
    schema = from_metadata(metadata)
    rows = _rows(sample, schema, golden)
    metadata["golden"] = _golden(estimator, schema, rows)
    metadata["training"] = _facts(estimator, sample, names, target, task)
    return metadata


def _require_fitted(estimator: Any) -> None:
    """Undescribable unless a fitted scikit-learn estimator (something with predict)."""
    from sklearn.exceptions import NotFittedError
    from sklearn.utils.validation import check_is_fitted

    if not callable(getattr(estimator, "predict", None)) or \
            not callable(getattr(estimator, "get_params", None)):
        raise Undescribable(f"a {type(estimator).__name__} is not a scikit-learn estimator "
                            "(no predict)")
    try:
        check_is_fitted(estimator)
    except NotFittedError:
        raise Undescribable(f"the {type(estimator).__name__} is not fitted: fit it on the "
                            "training data first") from None


def _rows(sample: Any, schema: Any, count: int) -> list[dict[str, Any]]:
    """Up to count complete rows, evenly spread, as JSON values of each feature's type."""
    complete = sample[list(schema.names)].dropna()
    step = max(len(complete) // max(count, 1), 1)
    chosen = complete.iloc[::step].iloc[:count]
    rows = []
    for record in chosen.to_dict("records"):
        rows.append({f.name: _json_value(f, record[f.name]) for f in schema.features})
    return rows


def _json_value(feature: Any, value: Any) -> Any:
    if feature.kind == "category":
        return ("true" if value else "false") if feature.boolean else str(value)
    return int(value) if feature.integer else float(value)


def _golden(estimator: Any, schema: Any, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows with the model's own answers, computed as serving computes them."""
    answers = signature.predictor(estimator, schema).predict(encode(schema, rows, single=False))
    if answers.task is Task.REGRESSION:
        return [{"features": row, "value": value}
                for row, value in zip(rows, answers.values, strict=True)]
    return [{"features": row, "label": label, "probability": probability}
            for row, label, probability in zip(rows, answers.labels, answers.probabilities,
                                               strict=True)]


def _facts(estimator: Any, sample: Any, names: list[str], target: str | None,
           task: Task) -> dict[str, Any]:
    """What is known of the training: estimator, rows, score on the sample (with a target)."""
    facts: dict[str, Any] = {"estimator": type(estimator).__name__, "rows": len(sample),
                             "sklearn": sklearn.__version__,
                             "described_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    if target is not None:
        complete = sample[[*names, target]].dropna()
        score = estimator.score(complete[names] if frames.names_in(estimator) is not None
                                else complete[names].to_numpy(), complete[target])
        facts["accuracy" if task is Task.CLASSIFICATION else "r2"] = round(float(score), 4)
    return facts


def describe_files(model: Path, sample: Path, **options: Any) -> tuple[Any, dict[str, Any]]:
    """The estimator in a skops or pickle file, and its metadata from a sample file."""
    try:
        estimator = load_estimator(model)
    except Exception as exc:  # unpickling can raise anything; the reason must say what
        raise Undescribable(f"{model.name}: cannot load a fitted estimator: {exc}") from None
    return estimator, describe(estimator, read_sample(sample), **options)


def write_folder(model: Any, metadata: dict[str, Any], out: Path) -> Path:
    """A registry model folder: the model file (copied, or a fitted estimator as skops) and
    metadata.json. `model`: a path to a .skops / .pkl file, or the estimator."""
    import skops.io

    out.mkdir(parents=True, exist_ok=True)
    if isinstance(model, Path):
        name = "pipeline.skops" if model.suffix == ".skops" else "pipeline.pkl"
        shutil.copyfile(model, out / name)
    else:
        skops.io.dump(model, out / "pipeline.skops")
    (out / METADATA).write_text(json.dumps(metadata, indent=2) + "\n", encoding="utf-8")
    return out
