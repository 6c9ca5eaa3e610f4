"""The holder: only what the validator accepted is loaded, beside the live model, then swapped.

The validator runs in-process here (its isolation is proved in test_validator.py and under
gunicorn); these tests are about the holder's decisions.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from devkit.snapshots import build_snapshot
from registry_sync.store.publish import publish as point_current_at
from serving.config import ServingConfig
from serving.errors import ModelRejected, NoModel, SnapshotNotFound
from serving.inputs.checks import parse_body
from serving.model import loader
from serving.swap.holder import ModelHolder
from serving.swap.jobs import State
from tests.support.diamonds import CLASSIFIER, VALID


class CountingLoader:
    """The real loader, counting calls; can be told to block until released."""

    def __init__(self):
        self.calls: list[str] = []
        self.gate: threading.Event | None = None

    def __call__(self, root: Path, snapshot_id: str, min_accuracy: float):
        self.calls.append(snapshot_id)
        if self.gate is not None:
            self.gate.wait(10)
        return loader.load(root, snapshot_id, min_accuracy)


VERDICT_WAIT = 60.0


@pytest.fixture
def counting() -> CountingLoader:
    return CountingLoader()


@pytest.fixture
def holder(model_root, counting, tmp_path) -> ModelHolder:
    return ModelHolder(ServingConfig(model_root=model_root, check_interval=0.02,
                                     validation_dir=tmp_path / "verdicts",
                                     isolate_validation=False), counting)


@pytest.fixture
def broken(model_root, tmp_path) -> str:
    """A staged (unpublished) snapshot whose files match neither layout."""
    folder = tmp_path / "broken"
    folder.mkdir()
    (folder / "readme.txt").write_text("nothing to serve")
    return build_snapshot(model_root, {CLASSIFIER: folder}, "9.9.9", publish=False)


def test_nothing_published_means_no_model(holder):
    """No `current`: nothing to load, and require() says so."""
    assert holder.converge() == "unchanged"
    with pytest.raises(NoModel, match="no model is loaded yet"):
        holder.require()


def test_converge_loads_and_swaps_once(holder, publish, counting):
    """The snapshot `current` names is validated, loaded once, then unchanged."""
    first = publish("1.0.0")
    assert holder.converge(wait=VERDICT_WAIT) == "swapped"
    assert holder.require().snapshot == first
    assert holder.converge() == "unchanged"
    assert counting.calls == [first]


def test_nothing_is_loaded_before_the_verdict(holder, publish, counting):
    """Without a verdict yet the worker says 'validating', loads nothing, and says why."""
    first = publish("1.0.0")
    assert holder.converge() == "validating"
    assert counting.calls == []
    with pytest.raises(NoModel, match="being validated"):
        holder.require()
    assert holder.converge(wait=VERDICT_WAIT) == "swapped"
    assert holder.require().snapshot == first


def test_a_request_keeps_the_model_it_started_with(holder, publish):
    """A swap replaces one reference; an in-flight request still holds the old model."""
    publish("1.0.0")
    holder.converge(wait=VERDICT_WAIT)
    in_flight = holder.require()
    publish("1.1.0")
    holder.converge(wait=VERDICT_WAIT)
    assert holder.require().version == "1.1.0"
    assert in_flight.version == "1.0.0"
    labels = in_flight.predictor.predict(parse_body(VALID, in_flight.schema, 1)[0]).labels
    assert labels[0] in ("Gold", "Silver")


def test_a_rejected_snapshot_leaves_the_live_model(holder, publish, broken, model_root, counting):
    """Published but refused by the validator: never loaded here, the old model serves."""
    publish("1.0.0")
    holder.converge(wait=VERDICT_WAIT)
    point_current_at(model_root, broken)
    with pytest.raises(ModelRejected):
        holder.converge(wait=VERDICT_WAIT)
    assert holder.require().version == "1.0.0"
    assert holder.last_rejection.snapshot == broken
    assert holder.last_rejection.phase == "validate"
    assert "unrecognised layout" in holder.last_rejection.reason
    assert broken not in counting.calls


def test_a_refused_snapshot_is_asked_about_again_only_when_forced(holder, broken, model_root):
    """The watcher does not ask about a refused `current` every tick; an explicit reload does."""
    point_current_at(model_root, broken)
    with pytest.raises(ModelRejected):
        holder.converge(wait=VERDICT_WAIT)
    assert holder.converge() == "unchanged"
    with pytest.raises(ModelRejected):
        holder.converge(force=True)
    with pytest.raises(NoModel, match="was rejected"):
        holder.require()


def test_validate_does_not_load_in_the_worker_nor_swap(holder, publish, counting):
    """Prepare then commit: the verdict comes from the validator; the worker loads on commit."""
    publish("1.0.0")
    holder.converge(wait=VERDICT_WAIT)
    staged = publish("1.1.0", publish=False)
    verdict = holder.validate(staged, wait=VERDICT_WAIT)
    assert verdict.state is State.ACCEPTED and verdict.version == "1.1.0"
    assert holder.require().version == "1.0.0"
    assert staged not in counting.calls
    point_current_at(holder._config.model_root, staged)
    assert holder.converge(force=True) == "swapped"
    assert holder.require().snapshot == staged
    assert counting.calls.count(staged) == 1


def test_a_worker_that_cannot_load_a_validated_snapshot_keeps_its_model(
        holder, publish, counting, model_root):
    """Accepted by the validator, yet this worker's own load fails: the live model stays."""
    publish("1.0.0")
    holder.converge(wait=VERDICT_WAIT)
    staged = publish("1.1.0", publish=False)
    assert holder.validate(staged, wait=VERDICT_WAIT).state is State.ACCEPTED

    def failing(root, snapshot_id, min_accuracy):
        raise ModelRejected(snapshot_id, "cannot load: MemoryError: ")

    holder._load = failing
    point_current_at(model_root, staged)
    with pytest.raises(ModelRejected):
        holder.converge()
    assert holder.require().version == "1.0.0"
    assert holder.last_rejection.phase == "load"


def test_validate_refuses_unknown_and_unfit_snapshots(holder, broken):
    """No such snapshot: SnapshotNotFound. Unfit: REJECTED, recorded as a validate phase."""
    with pytest.raises(SnapshotNotFound):
        holder.validate("20990101T000000Z-000000")
    verdict = holder.validate(broken, wait=VERDICT_WAIT)
    assert verdict.state is State.REJECTED and "unrecognised layout" in verdict.reason
    assert holder.last_rejection.phase == "validate"


def test_requests_never_wait_for_a_load(holder, publish, counting):
    """While a slow load runs beside it, the live model answers at once."""
    publish("1.0.0")
    holder.converge(wait=VERDICT_WAIT)
    publish("1.1.0")
    counting.gate = threading.Event()
    loading = threading.Thread(target=holder.converge, kwargs={"wait": VERDICT_WAIT})
    loading.start()
    try:
        started = time.perf_counter()
        assert holder.require().version == "1.0.0"
        assert time.perf_counter() - started < 0.05
    finally:
        counting.gate.set()
        loading.join(10)
    assert holder.require().version == "1.1.0"


def test_the_watcher_converges_by_itself(holder, publish):
    """With the background thread on, a validated snapshot is served within a second."""
    publish("1.0.0")
    holder.start()
    try:
        deadline = time.monotonic() + VERDICT_WAIT
        while holder.live is None and time.monotonic() < deadline:
            time.sleep(0.01)
        newest = publish("1.1.0", publish=False)
        assert holder.validate(newest, wait=VERDICT_WAIT).state is State.ACCEPTED
        point_current_at(holder._config.model_root, newest)
        published = time.monotonic()
        while holder.require().snapshot != newest and time.monotonic() < published + 2:
            time.sleep(0.01)
        assert holder.require().snapshot == newest
        assert time.monotonic() - published < 1.0
    finally:
        holder.stop()


def test_start_is_idempotent(holder):
    """Starting twice in one process keeps one watcher thread."""
    holder.start()
    first = holder._watcher
    holder.start()
    try:
        assert holder._watcher is first
    finally:
        holder.stop()
