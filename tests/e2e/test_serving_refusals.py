"""Versions that serving refuses at validation: never published, never retried, old model
serving throughout; the next good version goes through (a refused version is never swapped in).

Also the trust boundary on the serving side: a skops file naming a type outside the trusted list
(here `os.system`, which a pickle would happily call) is refused before anything is loaded.
(tests/integration/test_sidecar_serving.py proves the golden case with the sidecar and serving
alone; here it runs under load, for every way a model can be unfit.)
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import skops.io
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

from devkit.models import wrong_golden
from model_contract import layout


def unloadable(source: Path, target: Path) -> Path:
    """The pipeline's folder with pipeline.skops replaced by bytes that are not a skops file."""
    shutil.copytree(source, target)
    (target / "pipeline.skops").write_bytes(b"PK\x03\x04 this is not a model")
    return target


def untrusted_type(source: Path, target: Path) -> Path:
    """The pipeline's folder with a pipeline.skops that names os.system (code, if loaded)."""
    shutil.copytree(source, target)
    evil = Pipeline([("run", FunctionTransformer(func=os.system))])
    (target / "pipeline.skops").write_bytes(skops.io.dumps(evil))
    return target


UNFIT = {
    "fails-to-load": (unloadable, "cannot load"),
    "untrusted-type": (untrusted_type, "outside the trusted list"),
    "wrong-golden": (wrong_golden, "golden examples predicted wrongly"),
}


@pytest.mark.parametrize("case", sorted(UNFIT))
def test_a_version_serving_refuses_is_never_published_nor_retried_then_a_good_one_is(
        pod, tmp_path, case):
    """Serving's validation refuses it: discarded, recorded, old model serving; next one wins."""
    make, reason = UNFIT[case]
    before = pod.published()
    with pod.load() as load:
        version = pod.promote(make(pod.folders.pipeline, tmp_path / case))
        rejection = pod.wait_refused_once(version)
        assert reason in rejection["reason"]
        assert pod.published() == before
        assert not (layout.snapshots_dir(pod.root) / rejection["snapshot"]).exists()
        refusals = [e for e in pod.serving_events("model_rejected")
                    if e["snapshot"] == rejection["snapshot"]]
        assert [e["phase"] for e in refusals] == ["validate"]  # asked once, refused once
        assert 'serving_model_rejections_total{phase="validate"}' in pod.serving_metrics()
        assert pod.sidecar_events("model_rejected")[-1]["by"] == "serving"
        good = pod.promote(pod.folders.alternative)
        pod.wait_served(good)
    load.assert_all_ok()
    pod.assert_only_published_answered(load)
    assert version not in load.versions()
