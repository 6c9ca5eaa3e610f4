"""Loading snapshots: both layouts recognised by their files; anything unfit is rejected."""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest

from devkit.snapshots import build_snapshot, seed_models
from serving.errors import ModelRejected, SnapshotNotFound
from serving.inputs.checks import parse_body
from serving.model import dataset, loader
from tests.support.diamonds import CLASSIFIER

MIN_ACCURACY = 0.7


class Untrusted:
    """A type skops does not know; loading it could run anything it does on construction."""

    classes_ = ("Gold", "Silver")


def load(root: Path, snapshot_id: str) -> loader.ServedModel:
    """Load with the default minimum accuracy."""
    return loader.load(root, snapshot_id, MIN_ACCURACY)


def copy(source: Path, target: Path) -> Path:
    """A writable copy of a trained folder."""
    shutil.copytree(source, target)
    return target


def predict(model: loader.ServedModel, instances: list[dict]) -> tuple[list, list]:
    """Labels and probabilities of a model for instances."""
    answers = model.predictor.predict(parse_body({"instances": instances}, model.schema,
                                                 1000)[0])
    return answers.labels, answers.probabilities


def test_our_layout_is_recognised_and_passes_its_golden_examples(model_root, trained_models):
    """pipeline.skops + metadata.json: layout 'pipeline', primary = the model holding it."""
    snapshot = build_snapshot(model_root, {CLASSIFIER: trained_models.pipeline}, "1.1.0")
    model = load(model_root, snapshot)
    assert (model.layout, model.primary, model.version) == ("pipeline", CLASSIFIER, "1.1.0")
    assert model.checks == "24 golden examples"
    assert model.training["variant"] == "baseline"


def test_the_seed_layout_is_recognised_from_its_five_pickles(model_root, trained_models):
    """Five registry models with the textbook's pickles: primary = the one holding model.pkl."""
    versions = {name: f"2.0.{i}" for i, name in enumerate(seed_models(trained_models.seed))}
    snapshot = build_snapshot(model_root, seed_models(trained_models.seed), versions)
    model = load(model_root, snapshot)
    assert (model.layout, model.primary) == ("seed", "diamonds-model")
    assert model.version == versions["diamonds-model"] and model.versions == versions
    assert model.checks.startswith("sample accuracy")


def test_a_pickled_pipeline_is_accepted_too(model_root, trained_models):
    """pipeline.pkl is our layout too, for compatibility."""
    snapshot = build_snapshot(model_root, {CLASSIFIER: trained_models.pickled})
    assert load(model_root, snapshot).layout == "pipeline"


def test_both_layouts_answer_alike(model_root, trained_models):
    """The same data, trained both ways, gives mostly the same labels."""
    ours = load(model_root, build_snapshot(model_root, {CLASSIFIER: trained_models.pipeline}))
    seed = load(model_root, build_snapshot(model_root, seed_models(trained_models.seed)))
    rows = list(dataset.sample()[0])
    ours_labels, ours_p = predict(ours, rows)
    seed_labels, seed_p = predict(seed, rows)
    agreement = np.mean([a == b for a, b in zip(ours_labels, seed_labels, strict=True)])
    assert agreement > 0.85
    assert all(0.5 <= p <= 1 for p in ours_p + seed_p)


def test_files_may_sit_in_a_subfolder_of_the_model(model_root, trained_models, tmp_path):
    """A folder logged as out/ unzips to out/...: files are found through the manifest."""
    nested = tmp_path / "nested"
    copy(trained_models.pipeline, nested / "out")
    snapshot = build_snapshot(model_root, {CLASSIFIER: nested})
    assert load(model_root, snapshot).layout == "pipeline"


def test_a_missing_snapshot_is_not_found(model_root):
    """No such folder (or an id that would leave snapshots/): SnapshotNotFound."""
    for snapshot in ("nope", "../etc", ".staging"):
        with pytest.raises(SnapshotNotFound):
            load(model_root, snapshot)


def rejection(root: Path, snapshot: str) -> str:
    """The reason a snapshot is rejected."""
    with pytest.raises(ModelRejected) as caught:
        load(root, snapshot)
    assert caught.value.snapshot == snapshot
    return caught.value.reason


def test_a_file_differing_from_the_manifest_is_rejected(model_root, trained_models):
    """The manifest is verified (sizes and SHA-256) before anything is loaded."""
    snapshot = build_snapshot(model_root, {CLASSIFIER: trained_models.pipeline})
    path = model_root / "snapshots" / snapshot / CLASSIFIER / "pipeline.skops"
    data = bytearray(path.read_bytes())
    data[100] ^= 0xFF
    path.write_bytes(bytes(data))
    assert "does not match its SHA-256" in rejection(model_root, snapshot)


def test_a_snapshot_without_manifest_is_rejected(model_root, trained_models):
    """No manifest.json: rejected."""
    snapshot = build_snapshot(model_root, {CLASSIFIER: trained_models.pipeline})
    (model_root / "snapshots" / snapshot / "manifest.json").unlink()
    assert "no manifest.json" in rejection(model_root, snapshot)


def test_an_unknown_layout_is_rejected_with_what_is_missing(model_root, tmp_path):
    """Neither layout: the reason lists what was expected."""
    folder = tmp_path / "odd"
    folder.mkdir()
    (folder / "weights.bin").write_bytes(b"\0" * 10)
    snapshot = build_snapshot(model_root, {"odd": folder})
    reason = rejection(model_root, snapshot)
    assert "unrecognised layout" in reason and "model.pkl" in reason


def test_an_incomplete_seed_layout_is_rejected(model_root, trained_models):
    """Four of the five pickles: rejected, naming the missing one."""
    models = seed_models(trained_models.seed)
    del models["diamonds-scaler"]
    assert "scaler.pkl" in rejection(model_root, build_snapshot(model_root, models))


def test_a_corrupt_pickle_is_rejected(model_root, trained_models, tmp_path):
    """An unreadable model.pkl: rejected with the error's type."""
    models = seed_models(trained_models.seed)
    models["diamonds-model"] = tmp_path / "model"
    models["diamonds-model"].mkdir()
    (models["diamonds-model"] / "model.pkl").write_bytes(b"not a pickle")
    assert "cannot load: UnpicklingError" in rejection(model_root,
                                                       build_snapshot(model_root, models))


def test_a_swapped_target_encoder_fails_the_accuracy_check(model_root, trained_models, tmp_path):
    """Gold and Silver exchanged: the sample accuracy collapses and the snapshot is rejected."""
    models = seed_models(trained_models.seed)
    encoder = pickle.loads((models["diamonds-label-encoder"] / "labelEncoder.pkl").read_bytes())
    encoder.classes_ = np.array(encoder.classes_[::-1])
    models["diamonds-label-encoder"] = tmp_path / "labels"
    models["diamonds-label-encoder"].mkdir()
    (models["diamonds-label-encoder"] / "labelEncoder.pkl").write_bytes(pickle.dumps(encoder))
    assert "below the minimum 0.7" in rejection(model_root, build_snapshot(model_root, models))


def test_wrong_golden_expectations_are_rejected(model_root, trained_models, tmp_path):
    """A model that does not reproduce its golden examples is not served."""
    folder = copy(trained_models.pipeline, tmp_path / "m")
    metadata = json.loads((folder / "metadata.json").read_text())
    first = metadata["golden"][0]
    first["label"] = "Silver" if first["label"] == "Gold" else "Gold"
    (folder / "metadata.json").write_text(json.dumps(metadata))
    reason = rejection(model_root, build_snapshot(model_root, {CLASSIFIER: folder}))
    assert "1 of 24 golden examples predicted wrongly (#0" in reason


def test_a_skops_file_with_untrusted_types_is_rejected(model_root, trained_models, tmp_path):
    """skops loads only the listed trusted types; anything else is refused, not loaded."""
    import skops.io

    folder = copy(trained_models.pipeline, tmp_path / "m")
    skops.io.dump(Untrusted(), folder / "pipeline.skops")
    reason = rejection(model_root, build_snapshot(model_root, {CLASSIFIER: folder}))
    assert "outside the trusted list" in reason


def test_two_pipelines_are_ambiguous(model_root, trained_models):
    """Two registry models holding a pipeline: rejected rather than guessed."""
    snapshot = build_snapshot(model_root, {CLASSIFIER: trained_models.pipeline,
                                           "other": trained_models.alternative})
    assert "several registry models hold a pipeline" in rejection(model_root, snapshot)


def test_metadata_classes_must_match_the_pipeline(model_root, trained_models, tmp_path):
    """metadata.json naming other classes than the pipeline's: rejected."""
    folder = copy(trained_models.pipeline, tmp_path / "m")
    metadata = json.loads((folder / "metadata.json").read_text())
    metadata["classes"] = ["Yes", "No"]
    (folder / "metadata.json").write_text(json.dumps(metadata))
    assert "differ from metadata.json classes" in rejection(
        model_root, build_snapshot(model_root, {CLASSIFIER: folder}))


@pytest.mark.parametrize("version", ["1.0.0\r\nX-Injected: yes", "1.0.0\x00", "1.0.0-é",
                                     "1.0.0-\u2603", "v1", "1.0", "1." * 80 + "0", ""])
def test_a_version_that_is_not_semver_is_refused_naming_the_field(
        model_root, trained_models, version):
    """CR/LF, NUL, non-ASCII, not semver, too long, empty: refused before anything is loaded."""
    snapshot = build_snapshot(model_root, {CLASSIFIER: trained_models.pipeline}, version)
    with pytest.raises(ModelRejected, match=r"manifest models\[0\]\.version") as caught:
        load(model_root, snapshot)
    assert "\r" not in caught.value.reason and "\x00" not in caught.value.reason
    assert caught.value.reason.isascii()


def test_a_model_name_that_is_not_a_safe_name_is_refused(model_root, trained_models):
    """A registry model name with a space or a quote would reach metric labels: refused."""
    snapshot = build_snapshot(model_root, {'bad" name': trained_models.pipeline}, "1.0.0")
    with pytest.raises(ModelRejected, match=r"manifest models\[0\]\.name"):
        load(model_root, snapshot)


@pytest.mark.parametrize("version", ["1.2.3", "10.0.0-rc.1", "2.0.0-alpha"])
def test_semver_versions_with_pre_release_and_build_are_served(
        model_root, trained_models, version):
    """What Comet documents is accepted as is."""
    snapshot = build_snapshot(model_root, {CLASSIFIER: trained_models.pipeline}, version)
    assert load(model_root, snapshot).version == version
