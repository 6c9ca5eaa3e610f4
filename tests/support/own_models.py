"""The session fixture of the three own models (devkit.own_models trains and describes them)."""

from __future__ import annotations

import pytest

from devkit.own_models import OwnModel, bundled_sample, train_and_describe


@pytest.fixture(scope="session")
def own_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, OwnModel]:
    """The binary, five-class and regression models, each in two described versions."""
    frame = bundled_sample()
    work = tmp_path_factory.mktemp("own-models")
    return {kind: train_and_describe(kind, frame, work) for kind in ("gold", "cut", "price")}
