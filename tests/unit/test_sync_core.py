"""The sync core with fakes of the registry and serving: memory, rollback, pruning, trust."""

from __future__ import annotations

import json
import shutil

import pytest

from model_contract import layout
from registry_sync.store import publish, snapshot, state
from tests.support.sync_fakes import MODEL, SyncWorld


@pytest.fixture
def world(tmp_path):
    return SyncWorld(tmp_path / "models")


def serve(world: SyncWorld, version: str, bad: bool = False) -> None:
    world.registry.promote(version)
    if bad:
        world.serving.bad.add(version)
    world.sync()


def test_a_refusal_rolls_back_only_to_the_last_validated_snapshot(world):
    """Issue 11 case 13: two failed hand-overs, serving down once, then a refusal."""
    serve(world, "1.0.0")
    assert world.current_version() == "1.0.0"
    world.registry.promote("1.1.0")
    world.serving.bad.add("1.1.0")
    world.serving.mode = "crash"
    assert world.sync() is None and world.sync() is None  # ServingUnavailable twice
    world.serving.mode = "down"
    assert world.sync().kind == "published"  # nothing listens: published unvalidated
    assert world.current_version() == "1.1.0"
    assert len(world.snapshot_folders()) == 2  # the staged copy was reused, not rebuilt
    world.serving.mode = "up"
    assert world.sync().kind == "rejected"  # refused on confirmation: back to 1.0.0
    assert world.current_version() == "1.0.0"
    for _ in range(3):
        assert world.sync().kind == "rejected" and world.current_version() == "1.0.0"
    assert world.registry.downloads == ["1.0.0", "1.1.0"]
    serve(world, "1.2.0")
    assert world.current_version() == "1.2.0"


def test_after_a_rollback_the_same_pass_goes_on_to_a_newer_version(world):
    serve(world, "1.0.0")
    world.serving.mode = "down"
    serve(world, "1.1.0", bad=True)
    world.serving.mode = "up"
    world.registry.promote("1.2.0")
    assert world.sync().kind == "published"
    assert world.current_version() == "1.2.0"
    assert world.syncer.state.memory.refusal_of is not None
    assert [r.versions for r in world.syncer.state.memory.refusals] == [{MODEL: "1.1.0"}]


def test_a_refused_snapshot_with_nothing_validated_withdraws_current(world):
    world.serving.mode = "down"
    serve(world, "1.0.0", bad=True)
    assert world.current_version() == "1.0.0"
    world.serving.mode = "up"
    assert world.sync().kind == "rejected"
    assert not (world.root / layout.CURRENT).is_symlink()
    assert world.snapshot_folders() == []


def test_pruning_keeps_current_and_last_validated_and_at_most_keep(world):
    for minor in range(5):
        serve(world, f"1.{minor}.0")
        assert len(world.snapshot_folders()) <= world.keep
    memory = world.syncer.state.memory
    assert memory.last_validated == layout.current_snapshot_id(world.root)
    world.serving.mode = "down"
    serve(world, "2.0.0")
    serve(world, "2.1.0")
    folders = world.snapshot_folders()
    assert memory.last_validated in folders and layout.current_snapshot_id(world.root) in folders
    assert len(folders) <= world.keep + 1


def test_a_damaged_snapshot_is_never_linked_from_and_is_discarded(world):
    """Issue 11 case 2: a folder left without its files is not trusted."""
    serve(world, "1.0.0")
    first = layout.current_snapshot_id(world.root)
    serve(world, "1.1.0")
    (layout.snapshot_path(world.root, first) / MODEL / "weights.bin").unlink()
    serve(world, "1.0.0")  # back to the version of the damaged folder
    assert world.current_version() == "1.0.0"
    assert layout.current_snapshot_id(world.root) != first
    assert first not in world.snapshot_folders()
    assert world.registry.downloads == ["1.0.0", "1.1.0", "1.0.0"]  # downloaded again
    assert snapshot.damage(world.root, layout.current_snapshot_id(world.root)) is None


def test_a_file_changed_in_place_fails_its_hash(world):
    serve(world, "1.0.0")
    current = layout.current_snapshot_id(world.root)
    (layout.snapshot_path(world.root, current) / MODEL / "weights.bin").write_bytes(b"1.0.9")
    assert "SHA-256" in snapshot.damage(world.root, current)


def test_a_discard_interrupted_leaves_nothing_half_deleted_in_snapshots(world, monkeypatch):
    """SIGKILL while pruning: the folder left snapshots/ before a byte was deleted."""
    serve(world, "1.0.0")
    old = layout.current_snapshot_id(world.root)
    serve(world, "1.1.0")

    def killed(path, **_):
        if path.exists():  # the folder being deleted: lose one file, then die
            next(p for p in path.rglob("*") if p.is_file()).unlink()
            raise SystemExit("killed while deleting")

    monkeypatch.setattr(shutil, "rmtree", killed)
    with pytest.raises(SystemExit):
        snapshot.discard(world.root, old)
    monkeypatch.undo()
    assert old not in world.snapshot_folders()
    world.restart()  # cleans .staging
    assert not list(layout.staging_dir(world.root).glob("*"))


def test_the_prune_drops_refused_sets_and_second_copies(world):
    serve(world, "1.0.0")
    keep = layout.current_snapshot_id(world.root)
    copy = snapshot.new_snapshot_id(0)
    shutil.copytree(layout.snapshot_path(world.root, keep), layout.snapshot_path(world.root, copy))
    manifest_text = (layout.snapshot_path(world.root, copy) / "manifest.json").read_text()
    (layout.snapshot_path(world.root, copy) / "manifest.json").write_text(
        manifest_text.replace(keep, copy))
    assert publish.prune(world.root, 5) == [copy]


def test_the_memory_survives_a_restart_and_an_old_state_file_gives_a_fresh_one(world):
    world.serving.mode = "down"
    serve(world, "1.0.0")
    world.serving.mode = "up"
    serve(world, "1.1.0", bad=True)
    world.restart()
    memory = world.syncer.state.memory
    assert memory.published.snapshot == layout.current_snapshot_id(world.root)
    assert memory.published.validated and memory.last_validated == memory.published.snapshot
    assert [r.by for r in memory.refusals] == [state.RefusedBy.SERVING]
    old = {"rejected": {"x": {"versions": {MODEL: "0.1"}}}, "published": {"snapshot": "s"},
           "consecutive_failures": 2}
    (world.root / layout.STATE).write_text(json.dumps(old))
    loaded = state.load(world.root)
    assert loaded.memory == state.Memory() and loaded.consecutive_failures == 2
    (world.root / layout.STATE).write_text('{"memory": {"refusals": [{"by": 3}]}}')
    assert state.load(world.root) == state.SyncState()


def test_an_unsafe_archive_is_refused_once_by_archive(world):
    world.registry.promote("1.0.0", unsafe=True)
    assert world.sync().kind == "rejected"
    assert world.sync().detail.startswith("already rejected")
    assert world.registry.downloads == ["1.0.0"]
    assert world.syncer.state.memory.refusals[0].by is state.RefusedBy.ARCHIVE


def test_without_a_validated_snapshot_an_older_one_is_validated_before_it_is_restored(world):
    world.serving.mode = "down"
    serve(world, "1.0.0")
    serve(world, "1.1.0", bad=True)
    world.serving.mode = "up"
    assert world.sync().kind == "rejected"
    assert world.current_version() == "1.0.0"
    assert world.syncer.state.memory.last_validated in world.serving.accepted


@pytest.mark.parametrize("version", ["1.1.0\r\nX-Evil: 1", "1.1.0\x00", "1.1.0-ünï", "latest",
                                     "1." + "9" * 80 + ".0"])
def test_a_version_that_is_not_semver_is_refused_once_by_registry_never_downloaded(world, version):
    """Issue 11 case 3, at the edge: the value never reaches disk, a header or a metric label."""
    serve(world, "1.0.0")
    world.registry.promote(version)
    outcome = world.sync()
    assert outcome.kind == "rejected" and "field version" in outcome.detail
    assert outcome.detail.isascii() and outcome.detail.isprintable()  # shown escaped and cut
    assert len(outcome.detail) < 200
    assert world.sync().detail.startswith("already rejected")
    assert world.registry.downloads == ["1.0.0"] and world.current_version() == "1.0.0"
    [refusal] = world.syncer.state.memory.refusals
    assert refusal.by.value == "registry"
    serve(world, "1.2.0")
    assert world.current_version() == "1.2.0"


def test_a_pass_deposed_before_publishing_publishes_nothing(world):
    """Leadership is asked again just before `current` moves: lost, the old version stays, the
    built snapshot is kept for whoever leads next, and the pass says why."""
    serve(world, "1.0.0")
    world.registry.promote("1.1.0")
    world.syncer.may_publish = lambda: False
    assert world.sync() is None
    assert world.syncer.state.last_error["type"] == "LeadershipLost"
    assert world.current_version() == "1.0.0"
    world.syncer.may_publish = lambda: True
    assert world.sync().kind == "published" and world.current_version() == "1.1.0"
    assert world.registry.downloads == ["1.0.0", "1.1.0"]  # built once, published later
