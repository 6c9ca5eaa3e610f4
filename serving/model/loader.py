"""Loading a snapshot: verify its manifest, recognise its layout, load, warm and check it.

Two layouts are recognised from the files alone:
- pipeline: one registry model holds `pipeline.skops` (or `pipeline.pkl`) and `metadata.json`;
- seed: five pickles (`model.pkl`, `colorFeatureLabelEncoder.pkl`,
  `clarityFeatureLabelEncoder.pkl`, `scaler.pkl`, `labelEncoder.pkl`), in any registry models.
Whatever goes wrong becomes ModelRejected(snapshot, reason).
"""

from __future__ import annotations

import json
import pickle
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import skops.io

from model_contract import layout, manifest
from serving.errors import ModelRejected, SnapshotNotFound
from serving.inputs.schema import DIAMONDS, LABELS, Schema, from_metadata

from . import golden, registry_values, signature
from .predictors import SeedPredictor

PIPELINE_FILES = ("pipeline.skops", "pipeline.pkl")
METADATA = "metadata.json"
# Schema, golden examples and training notes: a few KiB for ours; parsing 33 MB stalls requests.
MAX_METADATA_BYTES = 1024 * 1024
SEED_FILES = {"model": "model.pkl", "color": "colorFeatureLabelEncoder.pkl",
              "clarity": "clarityFeatureLabelEncoder.pkl", "scaler": "scaler.pkl",
              "labels": "labelEncoder.pkl"}
# skops refuses every type it does not know to be safe; these are the ones our pipeline adds, and
# the list a ColumnTransformer keeps its remainder's columns in (scikit-learn 1.5-1.6, which
# skops 0.14 does not know yet).
TRUSTED_TYPES = ("sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
                 "sklearn.compose._column_transformer._RemainderColsList")


@dataclass(frozen=True)
class ServedModel:
    """A loaded, checked snapshot: what predicts, and what to say about it."""

    snapshot: str
    layout: str
    primary: str
    versions: dict[str, str]
    predictor: Any
    schema: Schema
    loaded_at: float
    load_seconds: float
    checks: str
    training: dict[str, Any] = field(default_factory=dict)

    @property
    def version(self) -> str:
        """The version of the registry model holding the classifier."""
        return self.versions[self.primary]

    def summary(self) -> dict[str, Any]:
        """The model block of every prediction response."""
        return {"version": self.version, "snapshot": self.snapshot, "versions": self.versions}


class LayoutError(ValueError):
    """The files of a snapshot match neither layout."""


def load(root: Path, snapshot_id: str, min_accuracy: float) -> ServedModel:
    """Load MODEL_ROOT/snapshots/<id> beside whatever is live; ModelRejected if unfit."""
    try:
        folder = layout.snapshot_path(root, snapshot_id)
    except ValueError:
        raise SnapshotNotFound(snapshot_id) from None
    if not folder.is_dir():
        raise SnapshotNotFound(snapshot_id)
    started = time.perf_counter()
    try:
        found = manifest.read(folder)
        registry_values.check(found)
        manifest.verify(folder, found)
        files = files_by_model(folder, found)
        kind, primary = detect(files)
        loaded = _load_pipeline(files[primary], min_accuracy) if kind == "pipeline" \
            else _load_seed(files, min_accuracy)
    except (manifest.ManifestError, registry_values.UnsafeValue, LayoutError,
            signature.Undescribed, golden.GoldenFailure) as exc:
        raise ModelRejected(snapshot_id, str(exc)) from exc
    except Exception as exc:  # unpickling can raise anything; the reason must say what
        raise ModelRejected(snapshot_id, f"cannot load: {type(exc).__name__}: {exc}") from exc
    predictor, schema, checks, training = loaded
    return ServedModel(snapshot_id, kind, primary, found.versions, predictor, schema,
                       loaded_at=time.time(), load_seconds=time.perf_counter() - started,
                       checks=checks, training=training)


def files_by_model(folder: Path, found: manifest.Manifest) -> dict[str, dict[str, Path]]:
    """Registry model name -> {file name: path}, from the manifest's file list."""
    files: dict[str, dict[str, Path]] = {}
    for model in found.models:
        named = files.setdefault(model.name, {})
        for entry in model.files:
            name = Path(entry.path).name
            if name in named:
                raise LayoutError(f"{model.name} holds two files named {name}")
            named[name] = folder / model.name / entry.path
    return files


def detect(files: dict[str, dict[str, Path]]) -> tuple[str, str]:
    """The layout of a snapshot and its primary registry model, from its file names."""
    pipelines = sorted(m for m, named in files.items() if any(p in named for p in PIPELINE_FILES))
    if len(pipelines) > 1:
        raise LayoutError("several registry models hold a pipeline: " + ", ".join(pipelines))
    if pipelines:
        return "pipeline", pipelines[0]
    holders = {role: [m for m, named in files.items() if name in named]
               for role, name in SEED_FILES.items()}
    missing = [SEED_FILES[role] for role, found in holders.items() if not found]
    if missing:
        raise LayoutError(f"unrecognised layout: no {PIPELINE_FILES[0]} and, of the seed's "
                          f"pickles, missing {', '.join(missing)}")
    doubled = [SEED_FILES[role] for role, found in holders.items() if len(found) > 1]
    if doubled:
        raise LayoutError("several registry models hold " + ", ".join(doubled))
    return "seed", holders["model"][0]


def _unpickle(path: Path) -> Any:
    with open(path, "rb") as handle:
        return pickle.load(handle)


def _load_skops(path: Path) -> Any:
    untrusted = skops.io.get_untrusted_types(file=path)
    unknown = sorted(set(untrusted) - set(TRUSTED_TYPES))
    if unknown:
        raise LayoutError(f"{path.name} holds types outside the trusted list: "
                          + ", ".join(unknown))
    return skops.io.load(path, trusted=untrusted)


def load_estimator(path: Path) -> Any:
    """A fitted estimator from a .skops file (trusted types only) or a pickle."""
    return _load_skops(path) if path.suffix == ".skops" else _unpickle(path)


def read_metadata(path: Path) -> object:
    """metadata.json's value; LayoutError past MAX_METADATA_BYTES (never parsed: a worker's
    json.loads of 33 MB holds its GIL, and every request, for most of a second)."""
    with open(path, "rb") as handle:
        raw = handle.read(MAX_METADATA_BYTES + 1)
    if len(raw) > MAX_METADATA_BYTES:
        raise LayoutError(f"{METADATA} is larger than the {MAX_METADATA_BYTES // 1024} KiB a "
                          "worker parses (MAX_METADATA_BYTES)")
    return json.loads(raw.decode("utf-8"))


def _load_pipeline(named: dict[str, Path], min_accuracy: float):
    metadata = read_metadata(named[METADATA]) if METADATA in named else {}
    if not isinstance(metadata, dict):
        raise LayoutError(f"{METADATA} is not a JSON object")
    estimator = load_estimator(named["pipeline.skops"] if "pipeline.skops" in named
                               else named["pipeline.pkl"])
    schema = from_metadata(metadata) if metadata else signature.without_metadata(estimator)
    predictor = signature.predictor(estimator, schema)
    if not schema.regression and sorted(predictor.classes) != sorted(schema.classes):
        raise LayoutError(f"pipeline classes {list(predictor.classes)} differ from "
                          f"{METADATA} classes {list(schema.classes)}")
    predictor.confirm_fast(_confirmation_rows(schema, metadata.get("golden")))
    _warm(predictor, schema)
    training = metadata.get("training", {})
    if metadata.get("golden"):
        count = golden.check_examples(predictor, schema, metadata["golden"],
                                      metadata.get("golden_tolerance"))
        return predictor, schema, f"{count} golden examples", training
    if schema.inferred or schema.regression or set(schema.classes) != set(LABELS) or \
            schema.names != DIAMONDS.names:
        return predictor, schema, "no golden examples: answers checked on the defaults", training
    accuracy = golden.check_sample(predictor, schema, min_accuracy)
    return predictor, schema, f"sample accuracy {accuracy:.3f}", training


def _confirmation_rows(schema: Schema, examples: Any) -> np.ndarray:
    """Rows the compiled path must answer exactly as the estimator: the defaults, the golden
    examples, and the bundled sample's 200 rows where they fit (the demo's features)."""
    parts = [golden.defaults_matrix(schema)]
    if examples:
        parts.append(golden.example_matrix(schema, examples))
    if schema.names == DIAMONDS.names and not schema.inferred:
        try:
            parts.append(golden.sample_matrix(schema))
        except golden.GoldenFailure:
            if not examples:
                raise  # the demo's classifier without golden examples is checked on them
    return np.concatenate(parts)


def _load_seed(files: dict[str, dict[str, Path]], min_accuracy: float):
    loaded = {role: _unpickle(next(named[name] for named in files.values() if name in named))
              for role, name in SEED_FILES.items()}
    schema = DIAMONDS.with_codes({"color": loaded["color"].classes_,
                                  "clarity": loaded["clarity"].classes_})
    predictor = SeedPredictor(loaded["model"], loaded["scaler"], loaded["labels"],
                              len(schema.features))
    predictor.confirm_fast(golden.sample_matrix(schema))
    _warm(predictor, schema)
    accuracy = golden.check_sample(predictor, schema, min_accuracy)
    return predictor, schema, f"sample accuracy {accuracy:.3f}", {}


def _warm(predictor: Any, schema: Schema) -> None:
    """One single-row call, so the first request does not pay for lazy set-up; LayoutError
    unless it answers as its task says (a finite value, a known class)."""
    row = np.array([[f.codes[f.default] if f.kind == "category" else f.default
                     for f in schema.features]], dtype=np.float64)
    answer = predictor.predict(row)
    if answer.task is not schema.task or answer.rows != 1:
        raise LayoutError(f"the model answers a {answer.task.value}, {METADATA} says "
                          f"{schema.task.value}")
    if schema.regression and not np.isfinite(answer.values).all():
        raise LayoutError("the model answers a value that is not a finite number")
