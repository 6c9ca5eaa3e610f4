"""registry-sync describe: the metadata.json serving needs, from a fitted model and a data sample.

    registry-sync describe MODEL_FILE SAMPLE [--target COLUMN] [--unit UNIT]
                           [--set COLUMN.KEY=VALUE ...] [--golden N] [--out FOLDER]

MODEL_FILE is a fitted scikit-learn estimator or pipeline (.skops, or a pickle); SAMPLE a CSV
or Parquet file of its training data (with the target column, if named, for the score). With
--out, FOLDER receives the model file and metadata.json, ready for `registry-sync register
FOLDER`; without, metadata.json is printed. Needs the serving extra (scikit-learn, pandas).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from .errors import ConfigError, ModelUndescribable

OVERRIDABLE = ("label", "unit", "min", "max", "default", "step")


def overrides_of(pairs: list[str]) -> dict[str, dict[str, Any]]:
    """--set COLUMN.KEY=VALUE pairs as {column: {key: value}}; ConfigError naming a bad pair."""
    found: dict[str, dict[str, Any]] = {}
    for pair in pairs:
        left, sep, value = pair.partition("=")
        column, dot, key = left.rpartition(".")
        if not sep or not dot or not column or key not in OVERRIDABLE:
            raise ConfigError(f"--set {pair!r}: expected COLUMN.KEY=VALUE, KEY one of "
                              f"{', '.join(OVERRIDABLE)}")
        found.setdefault(column, {})[key] = _typed(key, value, pair)
    return found


def _typed(key: str, value: str, pair: str) -> Any:
    if key in ("label", "unit", "default"):
        try:
            return float(value) if key == "default" else value
        except ValueError:
            return value  # a category's default
    try:
        return float(value)
    except ValueError:
        raise ConfigError(f"--set {pair!r}: {key} must be a number") from None


def describe_to(args: argparse.Namespace, out: Path | None) -> dict[str, Any]:
    """Describe args.model with args.sample; write the folder when out is given."""
    try:
        from serving.inputs.columns import Undescribable
        from serving.model.description import describe_files, write_folder
    except ImportError as exc:  # the sidecar image has no scikit-learn
        raise ConfigError(f"describe needs the serving extra (scikit-learn, pandas): {exc}") \
            from None
    for name, path in (("MODEL_FILE", args.model_file), ("SAMPLE", args.sample)):
        if not path.is_file():
            raise ConfigError(f"{name} {str(path)!r} is not a file")
    try:
        _, metadata = describe_files(args.model_file, args.sample, target=args.target,
                                     unit=args.unit, overrides=overrides_of(args.set),
                                     golden=args.golden)
    except Undescribable as exc:
        raise ModelUndescribable(f"cannot describe {args.model_file.name}: {exc}") from None
    if out is not None:
        write_folder(args.model_file, metadata, out)
    return metadata


def run(args: argparse.Namespace) -> int:
    """Print metadata.json, or write it with the model into --out."""
    metadata = describe_to(args, args.out)
    if args.out is None:
        print(json.dumps(metadata, indent=2))
        return 0
    what = metadata["task"] if metadata["task"] == "regression" else \
        f"classification into {', '.join(metadata['classes'])}"
    print(f"described {args.model_file.name}: {what}; {len(metadata['features'])} features, "
          f"{len(metadata['golden'])} golden examples -> {args.out}", file=sys.stdout)
    return 0


def add_describe_flags(sub: argparse.ArgumentParser) -> None:
    """The flags describe shares with register --model-file."""
    sub.add_argument("--target", default=None, metavar="COLUMN",
                     help="the sample's target column (left out of the features; scores it)")
    sub.add_argument("--unit", default="", help="a regressor's unit, shown with its value")
    sub.add_argument("--set", action="append", default=[], metavar="COLUMN.KEY=VALUE",
                     help="override a feature's " + ", ".join(OVERRIDABLE) + " (repeatable)")
    sub.add_argument("--golden", type=int, default=8, metavar="N",
                     help="golden examples to compute (default 8)")


def add_parser(commands: argparse._SubParsersAction) -> None:
    """Add `describe` to the CLI."""
    sub = commands.add_parser("describe", help="write the metadata.json serving needs, from a "
                              "fitted model and a data sample", description=__doc__.split("\n")[0])
    sub.add_argument("model_file", type=Path, metavar="MODEL_FILE",
                     help="fitted estimator or pipeline (.skops or pickle)")
    sub.add_argument("sample", type=Path, metavar="SAMPLE", help="CSV or Parquet data sample")
    add_describe_flags(sub)
    sub.add_argument("--out", type=Path, default=None, metavar="FOLDER",
                     help="write FOLDER/metadata.json and the model file (else print it)")
    sub.set_defaults(handler=run, quiet=True)
