"""serving-train: deterministic models in both layouts, and a deliberately different variant."""

from __future__ import annotations

import json

import numpy as np

from devkit.models import SEED
from serving import dataset, train
from serving.loader import SEED_FILES
from serving.schema import DIAMONDS
from serving.validation import encode


def predictions(folder) -> np.ndarray:
    """predict_proba of a trained pipeline on the bundled sample."""
    import skops.io

    pipeline = skops.io.load(folder / "pipeline.skops",
                             trusted=skops.io.get_untrusted_types(file=folder / "pipeline.skops"))
    return pipeline.predict_proba(encode(DIAMONDS, dataset.sample()[0], single=False))


def test_the_same_seed_gives_byte_identical_predictions(trained_models, tmp_path, capsys):
    """Training again with the same seed reproduces every probability exactly."""
    assert train.main([str(tmp_path / "again"), "--seed", str(SEED)]) == 0
    assert predictions(tmp_path / "again").tobytes() == \
        predictions(trained_models.pipeline).tobytes()
    assert "held-out accuracy: 0.8" in capsys.readouterr().out


def test_our_layout_writes_a_pipeline_and_its_metadata(trained_models):
    """pipeline.skops and metadata.json with schema, classes, golden examples and training."""
    metadata = json.loads((trained_models.pipeline / "metadata.json").read_text())
    assert [f["name"] for f in metadata["features"]] == list(DIAMONDS.names)
    assert metadata["classes"] == ["Gold", "Silver"]
    assert len(metadata["golden"]) == train.GOLDEN_EXAMPLES
    assert metadata["training"]["accuracy"] > 0.85 and metadata["training"]["seed"] == SEED
    assert (trained_models.pipeline / "pipeline.skops").stat().st_size < 1_000_000


def test_the_alternative_variant_answers_differently(trained_models):
    """--variant alternative is a different model, not just a different version string."""
    assert not np.array_equal(predictions(trained_models.pipeline),
                              predictions(trained_models.alternative))


def test_the_seed_layout_writes_five_registry_model_folders(trained_models):
    """One folder per registry model, each with its textbook file name."""
    written = sorted(p.relative_to(trained_models.seed).as_posix()
                     for p in trained_models.seed.rglob("*.pkl"))
    assert written == sorted(f"{train.SEED_FOLDERS[role]}/{name}"
                             for role, name in SEED_FILES.items())
