"""Fixtures of the benchmark tests: the trained model folders, the whole bundled data set."""

from __future__ import annotations

import numpy as np
import pytest

from devkit.models import trained_models  # noqa: F401
from serving import dataset


@pytest.fixture(scope="session")
def diamonds() -> tuple[list[dict], np.ndarray]:
    """Every row of the bundled data set (53,940) and its label."""
    rows, labels = dataset.read()
    return rows, np.array(labels, dtype=object)
