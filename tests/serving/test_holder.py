"""The holder: load beside the live model, then swap; a refused snapshot changes nothing."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from registry_sync.publish import publish as point_current_at
from serving import loader
from serving.config import ServingConfig
from serving.errors import ModelRejected, NoModel, SnapshotNotFound
from serving.holder import VALIDATED_TTL, ModelHolder
from serving.validation import parse_body
from tests.serving.conftest import CLASSIFIER, VALID
from tests.support.snapshots import build_snapshot


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


class Clock:
    """A clock tests move by hand."""

    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def counting() -> CountingLoader:
    return CountingLoader()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def holder(model_root, counting, clock) -> ModelHolder:
    return ModelHolder(ServingConfig(model_root=model_root, check_interval=0.02), counting, clock)


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
    """The snapshot `current` names is loaded once, then unchanged."""
    first = publish("1.0.0")
    assert holder.converge() == "swapped"
    assert holder.require().snapshot == first
    assert holder.converge() == "unchanged"
    assert counting.calls == [first]


def test_a_request_keeps_the_model_it_started_with(holder, publish):
    """A swap replaces one reference; an in-flight request still holds the old model."""
    publish("1.0.0")
    holder.converge()
    in_flight = holder.require()
    publish("1.1.0")
    holder.converge()
    assert holder.require().version == "1.1.0"
    assert in_flight.version == "1.0.0"
    labels, _ = in_flight.predictor.predict(parse_body(VALID, in_flight.schema, 1)[0])
    assert labels[0] in ("Gold", "Silver")


def test_a_rejected_snapshot_leaves_the_live_model(holder, publish, broken, model_root):
    """Published but unfit: ModelRejected, the old model serves, the reason is kept."""
    publish("1.0.0")
    holder.converge()
    point_current_at(model_root, broken)
    with pytest.raises(ModelRejected):
        holder.converge()
    assert holder.require().version == "1.0.0"
    assert holder.last_rejection.snapshot == broken
    assert "unrecognised layout" in holder.last_rejection.reason


def test_a_refused_snapshot_is_retried_only_when_forced(holder, broken, model_root, counting):
    """The watcher does not reload a refused `current` every tick; an explicit reload does."""
    point_current_at(model_root, broken)
    with pytest.raises(ModelRejected):
        holder.converge()
    assert holder.converge() == "unchanged"
    assert counting.calls == [broken]
    with pytest.raises(ModelRejected):
        holder.converge(force=True)
    assert counting.calls == [broken, broken]
    with pytest.raises(NoModel, match="was rejected"):
        holder.require()


def test_validate_loads_without_swapping_and_the_reload_reuses_it(holder, publish, counting):
    """Prepare then commit: one load in this worker, the swap happens only on converge."""
    publish("1.0.0")
    holder.converge()
    staged = publish("1.1.0", publish=False)
    assert holder.validate(staged).version == "1.1.0"
    assert holder.require().version == "1.0.0"
    point_current_at(holder._config.model_root, staged)
    assert holder.converge(force=True) == "swapped"
    assert holder.require().snapshot == staged
    assert counting.calls.count(staged) == 1


def test_a_validated_model_expires(holder, publish, counting, clock):
    """After the TTL the cached model is dropped and a reload loads again."""
    staged = publish("1.1.0", publish=False)
    holder.validate(staged)
    clock.now += VALIDATED_TTL + 1
    point_current_at(holder._config.model_root, staged)
    holder.converge()
    assert counting.calls == [staged, staged]


def test_validate_refuses_unknown_and_unfit_snapshots(holder, broken):
    """No such snapshot: SnapshotNotFound. Unfit: ModelRejected, recorded as a validate phase."""
    with pytest.raises(SnapshotNotFound):
        holder.validate("20990101T000000Z-000000")
    with pytest.raises(ModelRejected):
        holder.validate(broken)
    assert holder.last_rejection.phase == "validate"


def test_requests_never_wait_for_a_load(holder, publish, counting):
    """While a slow load runs beside it, the live model answers at once."""
    publish("1.0.0")
    holder.converge()
    publish("1.1.0")
    counting.gate = threading.Event()
    loading = threading.Thread(target=holder.converge)
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
    """With the background thread on, a newly published snapshot is served within a second."""
    publish("1.0.0")
    holder.start()
    try:
        deadline = time.monotonic() + 2
        while holder.live is None and time.monotonic() < deadline:
            time.sleep(0.01)
        published = time.monotonic()
        newest = publish("1.1.0")
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
