"""serving-train: train the diamonds classifier and write a registry model folder.

    serving-train OUT_DIR [--seed N] [--variant baseline|alternative] [--format skops|pickle]
                  [--seed-layout] [--version-note TEXT]

Our layout writes OUT_DIR/pipeline.skops and OUT_DIR/metadata.json; --seed-layout writes the
textbook's five pickles in five folders named after their registry models. The same seed gives
the same predictions, byte for byte.
"""

from __future__ import annotations

import argparse
import json
import pickle
import sys
from pathlib import Path
from typing import Any

import numpy as np
import sklearn
import skops.io
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import LabelEncoder, StandardScaler

from serving.inputs.checks import encode
from serving.inputs.schema import DIAMONDS

from . import dataset
from .loader import METADATA, SEED_FILES
from .predictors import PipelinePredictor

VARIANTS: dict[str, dict[str, Any]] = {
    # Few wide trees: about as accurate as 100 narrow ones, at a quarter of the call latency.
    "baseline": {"max_iter": 25, "max_leaf_nodes": 127, "learning_rate": 0.3},
    # Deliberately different, so tests can tell two models apart by their answers too.
    "alternative": {"max_iter": 12, "max_leaf_nodes": 31, "learning_rate": 0.5},
}
SEED_FOLDERS = {"model": "diamonds-model", "color": "diamonds-color-encoder",
                "clarity": "diamonds-clarity-encoder", "scaler": "diamonds-scaler",
                "labels": "diamonds-label-encoder"}
GOLDEN_EXAMPLES = 24
TEST_FRACTION = 0.2


def classifier(variant: str, seed: int) -> HistGradientBoostingClassifier:
    """The classifier of a variant; single-threaded-friendly, no early stopping (determinism)."""
    return HistGradientBoostingClassifier(early_stopping=False, random_state=seed,
                                          **VARIANTS[variant])


def split(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Train and held-out row indices, shuffled by the seed."""
    order = np.random.default_rng(seed).permutation(count)
    cut = int(count * (1 - TEST_FRACTION))
    return np.sort(order[:cut]), np.sort(order[cut:])


def train_pipeline(out: Path, seed: int, variant: str, fmt: str, note: str) -> float:
    """Train our layout's Pipeline and write it with its metadata; return held-out accuracy."""
    rows, labels = dataset.read()
    matrix, target = encode(DIAMONDS, rows, single=False), np.array(labels, dtype=object)
    train, test = split(len(rows), seed)
    pipeline = Pipeline([("classifier", classifier(variant, seed))])
    pipeline.fit(matrix[train], target[train])
    accuracy = float((pipeline.predict(matrix[test]) == target[test]).mean())
    golden = test[:GOLDEN_EXAMPLES]
    answers = PipelinePredictor(pipeline, matrix.shape[1]).predict(matrix[golden])
    predicted, probabilities = answers.labels, answers.probabilities
    metadata = {
        "format": 1,
        "features": DIAMONDS.to_json(),
        "classes": [str(c) for c in pipeline.classes_],
        "golden": [{"features": rows[i], "label": label, "probability": probability}
                   for i, label, probability in zip(golden, predicted, probabilities, strict=True)],
        "training": {"accuracy": round(accuracy, 4), "rows": len(train), "held_out": len(test),
                     "seed": seed, "variant": variant,
                     "estimator": "HistGradientBoostingClassifier", "params": VARIANTS[variant],
                     "sklearn": sklearn.__version__, "note": note},
    }
    out.mkdir(parents=True, exist_ok=True)
    if fmt == "skops":
        skops.io.dump(pipeline, out / "pipeline.skops")
    else:
        (out / "pipeline.pkl").write_bytes(pickle.dumps(pipeline))
    (out / METADATA).write_text(json.dumps(metadata, indent=2) + "\n", encoding="utf-8")
    return accuracy


def train_seed_layout(out: Path, seed: int, variant: str) -> float:
    """Train the textbook's five artifacts (encoders, scaler, classifier, target encoder)."""
    rows, labels = dataset.read()
    color, clarity = LabelEncoder(), LabelEncoder()
    color.fit([r["color"] for r in rows])
    clarity.fit([r["clarity"] for r in rows])
    coded = DIAMONDS.with_codes({"color": color.classes_, "clarity": clarity.classes_})
    matrix = encode(coded, rows, single=False)
    target_encoder = LabelEncoder().fit(labels)
    target = target_encoder.transform(labels)
    train, test = split(len(rows), seed)
    scaler = StandardScaler().fit(matrix[train])
    model = classifier(variant, seed).fit(scaler.transform(matrix[train]), target[train])
    accuracy = float((model.predict(scaler.transform(matrix[test])) == target[test]).mean())
    artifacts = {"model": model, "color": color, "clarity": clarity, "scaler": scaler,
                 "labels": target_encoder}
    for role, artifact in artifacts.items():
        folder = out / SEED_FOLDERS[role]
        folder.mkdir(parents=True, exist_ok=True)
        (folder / SEED_FILES[role]).write_bytes(pickle.dumps(artifact))
    return accuracy


def main(argv: list[str] | None = None) -> int:
    """Train, write OUT_DIR, print the held-out accuracy."""
    parser = argparse.ArgumentParser(prog="serving-train", description=__doc__.split("\n")[0])
    parser.add_argument("out_dir", type=Path, help="folder to write the model into")
    parser.add_argument("--seed", type=int, default=42, help="random seed (default 42)")
    parser.add_argument("--variant", choices=sorted(VARIANTS), default="baseline",
                        help="hyperparameters; 'alternative' makes a deliberately different model")
    parser.add_argument("--format", choices=("skops", "pickle"), default="skops",
                        help="pipeline file format of our layout (default skops)")
    parser.add_argument("--seed-layout", action="store_true",
                        help="write the textbook's five pickles in five registry model folders")
    parser.add_argument("--version-note", default="", help="free text kept in metadata.json")
    args = parser.parse_args(argv)
    if args.seed_layout:
        accuracy = train_seed_layout(args.out_dir, args.seed, args.variant)
        written = ", ".join(f"{SEED_FOLDERS[r]}/{SEED_FILES[r]}" for r in SEED_FOLDERS)
    else:
        accuracy = train_pipeline(args.out_dir, args.seed, args.variant, args.format,
                                  args.version_note)
        written = ("pipeline.skops" if args.format == "skops" else "pipeline.pkl") + ", " + METADATA
    print(f"held-out accuracy: {accuracy:.4f}")
    print(f"wrote {args.out_dir}: {written}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
