"""Random histories of the sync core: promotions, registry faults, serving verdicts, crashes.

After every step: `current` is absent or a complete snapshot that serving accepted (or that was
offered while nothing listened); a version serving refused is never `current`; at most
KEEP_SNAPSHOTS + 1 snapshot folders. Once the registry and serving behave, the
production version is served within a bounded number of passes (or, if it is bad, never).

A crash is a BaseException raised before the n-th durable step of a pass (state save, build,
publish, withdraw, discard); the process is then rebuilt from disk. Right after a crash, `current`
may still hold a version serving has just refused (the crash came between the verdict and the
rollback): the refused-version check waits for the next pass that completes.
"""

from __future__ import annotations

import shutil
import tempfile
from contextlib import ExitStack
from pathlib import Path
from unittest import mock

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from model_contract import layout
from registry_sync.store import publish, snapshot, state
from tests.support.sync_fakes import SyncWorld

KEEP = 2
DURABLE_STEPS = [(state, "save"), (snapshot, "build"), (publish, "publish"),
                 (publish, "withdraw"), (snapshot, "discard")]


class Crash(BaseException):
    """The process was killed (SIGKILL) at this point."""


class SyncHistory(RuleBasedStateMachine):
    """The sync core driven through random histories."""

    def __init__(self) -> None:
        super().__init__()
        # on tmpfs where there is one: fsync costs nothing there, and histories are many
        shm = "/dev/shm" if Path("/dev/shm").is_dir() else None
        self.folder = Path(tempfile.mkdtemp(prefix="sync-history-", dir=shm))
        self.world = SyncWorld(self.folder / "models", keep=KEEP)
        self.minor = 0
        self.bad_versions: set[str] = set()
        self.just_crashed = False

    def teardown(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)

    @rule(bad=st.booleans(), unsafe=st.booleans())
    def promote(self, bad: bool, unsafe: bool) -> None:
        self.minor += 1
        version = self.world.registry.promote(f"1.{self.minor}.0", unsafe=unsafe and not bad)
        if bad:
            self.world.serving.bad.add(version)
            self.bad_versions.add(version)

    @rule(back=st.integers(1, 3))
    def demote_to_an_older_version(self, back: int) -> None:
        versions = self.world.registry.versions
        if len(versions) > back:
            self.world.registry.production = versions[-1 - back].version

    @rule(down=st.booleans())
    def registry_fault(self, down: bool) -> None:
        self.world.registry.down = down

    @rule(mode=st.sampled_from(["up", "down", "crash", "slow"]))
    def serving_answers(self, mode: str) -> None:
        self.world.serving.mode = mode

    @rule()
    def sync_pass(self) -> None:
        self.world.sync()
        self.just_crashed = False

    @rule(at=st.integers(1, 8))
    def crash_during_a_pass(self, at: int) -> None:
        steps = [0]

        def wrap(original):
            def step(*args, **kwargs):
                steps[0] += 1
                if steps[0] == at:
                    raise Crash()
                return original(*args, **kwargs)
            return step

        with ExitStack() as patches:
            for module, name in DURABLE_STEPS:
                patches.enter_context(mock.patch.object(module, name,
                                                        wrap(getattr(module, name))))
            try:
                self.world.sync()
            except Crash:
                self.just_crashed = True
        self.world.restart()

    @rule()
    def restart(self) -> None:
        self.world.restart()

    @rule()
    def faults_stop_and_production_is_served(self) -> None:
        world = self.world
        world.registry.down, world.serving.mode = False, "up"
        for _ in range(3):
            world.sync()
        self.just_crashed = False
        production = world.registry.production
        if production is None:
            return
        refused = production in self.bad_versions or production in world.registry.unsafe
        if refused:
            assert world.current_version() != production
        else:
            assert world.current_version() == production, (production, world.current_version())

    @invariant()
    def current_is_absent_or_complete_and_not_refused(self) -> None:
        root = self.world.root
        current = layout.current_snapshot_id(root)
        if current is None:
            return
        assert snapshot.damage(root, current) is None
        version = self.world.current_version()
        assert version not in self.world.registry.unsafe
        if self.just_crashed:
            return
        assert version not in self.world.serving.refused
        serving = self.world.serving
        assert current in serving.accepted or current in serving.unasked

    @invariant()
    def at_most_keep_plus_one_snapshots(self) -> None:
        assert len(self.world.snapshot_folders()) <= KEEP + 1, self.world.snapshot_folders()


SyncHistory.TestCase.settings = settings(max_examples=40, stateful_step_count=25, deadline=None,
                                         suppress_health_check=list(HealthCheck))
test_sync_histories = SyncHistory.TestCase
