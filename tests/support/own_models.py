"""The session fixture of the three own models (devkit/own_models.py trains and describes them).

    from tests.support.own_models import own_models  # noqa: F401  (in a conftest.py)
"""

from __future__ import annotations

import pytest

from devkit.own_models import DATA, NUMBERS, ROWS, OwnModel, train_and_describe

__all__ = ["DATA", "NUMBERS", "ROWS", "OwnModel", "own_models", "train_and_describe"]


@pytest.fixture(scope="session")
def own_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, OwnModel]:
    """The binary, five-class and regression models, each in two described versions."""
    import pandas as pd

    frame = pd.read_csv(DATA).sample(ROWS, random_state=0).reset_index(drop=True)
    work = tmp_path_factory.mktemp("own-models")
    return {kind: train_and_describe(kind, frame, work) for kind in ("gold", "cut", "price")}
