"""Three models of a team's own, trained from the bundled data and described by the new command.

    train_and_describe("price", frame, work)   # the demo's second model kind, and the tests':

    from tests.support.own_models import own_models  # noqa: F401  (the session fixture)

    def test_something(own_models):
        kind = own_models["price"]   # also "gold" (binary) and "cut" (five classes)
        kind.folder                  # pipeline.skops + metadata.json, from `registry-sync describe`
        kind.other                   # a second version: other hyperparameters, described too
        kind.estimator, kind.sample  # the fitted estimator and its data (a DataFrame)

Small on purpose (3,000 rows, a few trees each): a few seconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .processes import REPO_ROOT

DATA = REPO_ROOT / "serving" / "data" / "diamonds.csv.gz"
ROWS = 3000
NUMBERS = ["carat", "depth", "table", "price", "x", "y", "z"]


@dataclass(frozen=True)
class OwnModel:
    """One kind of model: its described folders (two versions), estimator and sample."""

    name: str
    target: str
    folder: Path
    other: Path
    estimator: Any
    sample: Any  # the features and the target, as described

    def instance(self, row: int = 0) -> dict[str, Any]:
        """One row of the sample as a JSON instance (no target)."""
        record = self.sample.drop(columns=[self.target]).iloc[row].to_dict()
        return {k: (v if isinstance(v, str) else float(v) if isinstance(v, float) else int(v))
                for k, v in record.items()}


def _gold(frame: Any) -> Any:
    return frame["cut"].isin(["Ideal", "Premium"]).map({True: "Gold", False: "Silver"})


def _estimators(kind: str, variant: int) -> Any:
    """The estimator of a kind; variant 1 and 2 differ in their hyperparameters."""
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OrdinalEncoder

    trees = {"max_iter": 12, "learning_rate": 0.3} if variant == 1 else \
        {"max_iter": 6, "learning_rate": 0.6, "max_leaf_nodes": 15}
    if kind == "gold":  # numbers only: the compiled fast path applies
        return HistGradientBoostingClassifier(early_stopping=False, random_state=0, **trees)
    categories = ["color", "clarity"] if kind == "cut" else ["cut", "color", "clarity"]
    encoder = ColumnTransformer([("categories", OrdinalEncoder(), categories)],
                                remainder="passthrough")
    final = HistGradientBoostingClassifier if kind == "cut" else HistGradientBoostingRegressor
    return make_pipeline(encoder, final(early_stopping=False, random_state=0, **trees))


def train_and_describe(kind: str, frame: Any, work: Path) -> OwnModel:
    """Fit both versions of a kind, save them with skops, describe each with the command."""
    import skops.io

    from registry_sync.cli import main

    target = {"gold": "label", "cut": "cut", "price": "price"}[kind]
    columns = {"gold": NUMBERS,
               "cut": ["carat", "color", "clarity", "depth", "table", "price", "x", "y", "z"],
               "price": ["carat", "cut", "color", "clarity", "depth", "table", "x", "y", "z"]}
    sample = frame[columns[kind]].copy()
    sample[target] = _gold(frame) if kind == "gold" else frame[target]
    sample_file = work / f"{kind}.csv"
    sample.to_csv(sample_file, index=False)
    folders, fitted = [], None
    for variant in (1, 2):
        estimator = _estimators(kind, variant).fit(sample[columns[kind]], sample[target])
        model_file = work / f"{kind}-{variant}.skops"
        skops.io.dump(estimator, model_file)
        out = work / f"{kind}-{variant}"
        flags = ["--unit", "USD"] if kind == "price" else []
        if main(["describe", str(model_file), str(sample_file), "--target", target,
                 "--out", str(out), *flags]) != 0:
            raise RuntimeError(f"registry-sync describe refused {model_file}")
        folders.append(out)
        fitted = fitted or estimator
    return OwnModel(kind, target, folders[0], folders[1], fitted, sample)


def bundled_sample(rows: int = ROWS) -> Any:
    """`rows` rows of the bundled data set, the same ones every time (a DataFrame)."""
    import pandas as pd

    return pd.read_csv(DATA).sample(rows, random_state=0).reset_index(drop=True)

