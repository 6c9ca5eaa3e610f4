"""A model's signature: its features (names, order, types, bounds, categories and codes) and
what it answers (the task: classes, or a value with its unit). DIAMONDS is the demo's.

A model sees a float64 matrix whose columns follow `Schema.features`; a categorical value is
given as its code (its index in the model's category list, or the LabelEncoder's code in the
seed layout); a boolean is a category of "false" and "true" (codes 0 and 1).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any

from serving.model.predictions import Task

LABELS = ("Gold", "Silver")
GOLD_CUTS = ("Ideal", "Premium")
UNBOUNDED = 1.7976931348623157e308  # the largest float: any finite number is within
TYPES = ("number", "integer", "category", "boolean")
BOOLEAN = ("false", "true")


@dataclass(frozen=True)
class NumericFeature:
    """A number with inclusive bounds, a form default and a form step."""

    name: str
    label: str
    minimum: float
    maximum: float
    default: float
    step: float = 0.01
    unit: str = ""
    integer: bool = False  # whole numbers only

    kind = "number"

    @property
    def type_name(self) -> str:
        """The signature's type: number, or integer (whole numbers only)."""
        return "integer" if self.integer else "number"

    @property
    def bounded(self) -> bool:
        """Whether the feature has bounds (a model without metadata.json has none)."""
        return self.minimum > -UNBOUNDED or self.maximum < UNBOUNDED

    def to_json(self) -> dict[str, Any]:
        """The feature as written in metadata.json and shown by /api/v1/model."""
        return {"name": self.name, "type": self.type_name,
                "label": self.label, "min": self.minimum, "max": self.maximum,
                "default": self.default, "step": self.step, "unit": self.unit}


@dataclass(frozen=True)
class CategoricalFeature:
    """A string from a fixed list; `codes` maps each value to the number the model sees."""

    name: str
    label: str
    categories: tuple[str, ...]
    default: str
    codes: Mapping[str, float] = field(default_factory=dict)
    boolean: bool = False  # "false" and "true", as a pandas bool column for the model

    kind = "category"

    def __post_init__(self) -> None:
        if not self.codes:
            object.__setattr__(self, "codes", {c: float(i) for i, c in enumerate(self.categories)})

    @property
    def type_name(self) -> str:
        """The signature's type: category, or boolean ("false" / "true")."""
        return "boolean" if self.boolean else "category"

    def to_json(self) -> dict[str, Any]:
        """The feature as written in metadata.json and shown by /api/v1/model."""
        if self.boolean:
            return {"name": self.name, "type": "boolean", "label": self.label,
                    "default": self.default}
        return {"name": self.name, "type": "category", "label": self.label,
                "categories": list(self.categories), "default": self.default}


Feature = NumericFeature | CategoricalFeature


@dataclass(frozen=True)
class Schema:
    """The model's input columns in order, and what it answers: class names, or a value."""

    features: tuple[Feature, ...]
    classes: tuple[str, ...] = LABELS  # empty for a regressor
    task: Task = Task.CLASSIFICATION
    target: str = ""  # what the model predicts, as shown on the page (e.g. "Price")
    unit: str = ""  # a regressor's unit (e.g. "USD")
    inferred: bool = False  # from the estimator's feature names: no metadata.json

    @property
    def regression(self) -> bool:
        """Whether the model answers a number."""
        return self.task is Task.REGRESSION

    @cached_property
    def names(self) -> tuple[str, ...]:
        """Feature names in column order."""
        return tuple(f.name for f in self.features)

    @cached_property
    def name_set(self) -> frozenset[str]:
        """Feature names, to compare an instance's keys with."""
        return frozenset(self.names)

    def feature(self, name: str) -> Feature:
        """One feature by name."""
        return next(f for f in self.features if f.name == name)

    def defaults(self) -> dict[str, Any]:
        """A complete, valid instance: every feature at its default."""
        return {f.name: f.default for f in self.features}

    def to_json(self) -> list[dict[str, Any]]:
        """The features as a JSON list."""
        return [f.to_json() for f in self.features]

    def with_codes(self, codes: Mapping[str, Sequence[str]]) -> Schema:
        """The schema with categories coded by position in the given lists (LabelEncoders)."""
        features = []
        for feature in self.features:
            if isinstance(feature, CategoricalFeature) and feature.name in codes:
                known = [str(c) for c in codes[feature.name]]
                shown = [c for c in feature.categories if c in known]
                shown += [c for c in known if c not in shown]
                default = feature.default if feature.default in known else shown[0]
                feature = replace(feature, categories=tuple(shown), default=default,
                                  codes={c: float(i) for i, c in enumerate(known)})
            features.append(feature)
        return replace(self, features=tuple(features))


DIAMONDS = Schema(features=(
    NumericFeature("carat", "Carat", 0.1, 6.0, 0.7, 0.01, "ct"),
    CategoricalFeature("color", "Color", ("D", "E", "F", "G", "H", "I", "J"), "G"),
    CategoricalFeature("clarity", "Clarity",
                       ("IF", "VVS1", "VVS2", "VS1", "VS2", "SI1", "SI2", "I1"), "SI1"),
    NumericFeature("depth", "Total depth", 40.0, 80.0, 61.8, 0.1, "%"),
    NumericFeature("table", "Table", 40.0, 100.0, 57.0, 0.1, "%"),
    NumericFeature("price", "Price", 100.0, 30000.0, 2400.0, 1.0, "USD"),
    NumericFeature("x", "Length (x)", 0.0, 15.0, 5.7, 0.01, "mm"),
    NumericFeature("y", "Width (y)", 0.0, 60.0, 5.7, 0.01, "mm"),
    NumericFeature("z", "Depth (z)", 0.0, 35.0, 3.5, 0.01, "mm"),
))



def is_demo(schema: Schema) -> bool:
    """Whether a schema is the demo's: its nine features and Gold/Silver (the seed layout codes
    its categories its own way)."""
    return schema.names == DIAMONDS.names and schema.classes == DIAMONDS.classes


def tagline(schema: Schema) -> str:
    """What a model predicts, in a few words: "Predicts price (USD)", "Predicts a class of A, B"."""
    what = schema.target or ("a value" if schema.regression else "a class")
    return f"Predicts {what}" + (f" ({schema.unit})" if schema.unit else "") \
        + ("" if schema.regression else " of " + ", ".join(schema.classes))

def _feature_from_json(item: Mapping[str, Any]) -> Feature:
    name, label = str(item["name"]), str(item.get("label") or item["name"])
    if item["type"] == "boolean":
        default = str(item.get("default", "false")).lower()
        return CategoricalFeature(name, label, BOOLEAN, default if default in BOOLEAN
                                  else "false", boolean=True)
    if item["type"] == "category":
        categories = tuple(str(c) for c in item["categories"])
        if not categories or len(set(categories)) != len(categories):
            raise ValueError(f"feature {name}: categories must be distinct and not empty")
        default = str(item.get("default", categories[0]))
        return CategoricalFeature(name, label, categories,
                                  default if default in categories else categories[0])
    if item["type"] not in ("number", "integer"):
        raise ValueError(f"feature {name}: unknown type {item['type']!r} (one of "
                         f"{', '.join(TYPES)})")
    low, high = float(item["min"]), float(item["max"])
    if not low <= high:
        raise ValueError(f"feature {name}: min {low} is above max {high}")
    default = min(max(float(item.get("default", low)), low), high)
    integer = item["type"] == "integer"
    step = float(item.get("step", 1.0 if integer else 0.01))
    return NumericFeature(name, label, low, high, default, step, str(item.get("unit", "")),
                          integer)


def from_metadata(metadata: Mapping[str, Any]) -> Schema:
    """The schema a metadata.json describes; ValueError naming what is malformed."""
    try:
        task = Task(metadata.get("task", Task.CLASSIFICATION.value))
    except ValueError:
        raise ValueError("metadata.json task must be classification or regression") from None
    try:
        features = tuple(_feature_from_json(item) for item in metadata["features"])
        classes = () if task is Task.REGRESSION else \
            tuple(str(c) for c in metadata["classes"])
        target = metadata.get("target") or {}
        name, unit = str(target.get("label") or target.get("name") or ""), \
            str(target.get("unit") or "")
    except (KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"metadata.json lacks or mistypes {exc}") from None
    if not features or len({f.name for f in features}) != len(features):
        raise ValueError("metadata.json features must be distinct and not empty")
    if task is Task.CLASSIFICATION and len(classes) < 2:
        raise ValueError("metadata.json must name at least two classes")
    return Schema(features=features, classes=classes, task=task, target=name, unit=unit)


def inferred(names: Sequence[str], task: Task, classes: Sequence[str]) -> Schema:
    """The schema of a model without metadata.json: unbounded numbers, named by the model."""
    features = tuple(NumericFeature(str(n), str(n), -UNBOUNDED, UNBOUNDED, 0.0, 0.01)
                     for n in names)
    return Schema(features=features, classes=tuple(str(c) for c in classes), task=task,
                  inferred=True)
