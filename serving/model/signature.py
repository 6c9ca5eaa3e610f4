"""What serving makes of an estimator with its signature: the predictor for its task, and the
schema of a model that came without metadata.json.

A model without metadata.json whose estimator names its features (`feature_names_in_`) is
served with numeric, unbounded features; one that does not is the demo's classifier if it
answers the demo's classes on its nine features, and is refused otherwise (Undescribed says
how to make the metadata).
"""

from __future__ import annotations

from typing import Any

from serving.inputs.schema import DIAMONDS, LABELS, Schema, inferred

from . import frames
from .predictions import Task
from .predictors import PipelinePredictor, RegressorPredictor

HOW_TO_DESCRIBE = ("describe it: registry-sync describe MODEL_FILE SAMPLE.csv --out FOLDER "
                   "writes the metadata.json serving needs (docs/own-model.md)")


class Undescribed(ValueError):
    """A model serving cannot describe by itself: no metadata.json, no feature names."""


def task_of(estimator: Any) -> Task:
    """Classification for an estimator with predict_proba and classes, else regression."""
    if callable(getattr(estimator, "predict_proba", None)) and \
            getattr(estimator, "classes_", None) is not None:
        return Task.CLASSIFICATION
    return Task.REGRESSION


def without_metadata(estimator: Any) -> Schema:
    """The schema of an estimator that came without metadata.json; Undescribed if none."""
    names = frames.names_in(estimator)
    task = task_of(estimator)
    classes = [str(c) for c in estimator.classes_] if task is Task.CLASSIFICATION else []
    if names is not None:
        return inferred(names, task, classes)
    if task is Task.CLASSIFICATION and sorted(classes) == sorted(LABELS) and \
            getattr(estimator, "n_features_in_", len(DIAMONDS.features)) == \
            len(DIAMONDS.features):
        return DIAMONDS  # the demo's classifier, trained before metadata.json existed
    raise Undescribed("no metadata.json, and the estimator does not name its features "
                      "(fitted on a matrix, not a DataFrame): " + HOW_TO_DESCRIBE)


def predictor(estimator: Any, schema: Schema) -> Any:
    """The predictor of the schema's task, fed a DataFrame if the estimator names features."""
    names = frames.names_in(estimator)
    prepare = {}
    if names is not None:
        if names != list(schema.names):
            raise Undescribed(f"the estimator takes the features {names}, metadata.json "
                              f"describes {list(schema.names)}: " + HOW_TO_DESCRIBE)
        prepare = {"prepare": frames.frame_builder(schema)}
    if schema.regression:
        return RegressorPredictor(estimator, len(schema.features), **prepare)
    return PipelinePredictor(estimator, len(schema.features), **prepare)
