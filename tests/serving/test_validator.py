"""The validator process: whatever a model does to the process loading it is a rejection.

Real child processes (python -m serving.swap.validator), real hostile pickles: one that SIGKILLs its
loader, one that segfaults it, one that hangs past the deadline, one that allocates past the
memory limit. The test process plays the serving worker: it must live on.
"""

from __future__ import annotations

import errno
import json
import os
import socket
import threading
import time
from pathlib import Path

import pytest

from devkit.models import hostile
from devkit.snapshots import build_snapshot
from serving.config import MIB, ServingConfig
from serving.swap import cgroups
from serving.swap.jobs import State, Validations
from tests.support.diamonds import CLASSIFIER
from tests.support.escapes import attempts, escaping, threading_model

VERDICT_WAIT = 120.0
HANG_TIMEOUT = 8.0

REASONS = {
    "sigkill": "validator killed by signal 9 (SIGKILL); likely out of memory",
    "segfault": "validator killed by signal 11 (SIGSEGV)",
    "hang": f"validation took longer than VALIDATION_TIMEOUT={HANG_TIMEOUT:g}s",
    "allocate": "validator ran out of memory (VALIDATION_MEMORY_LIMIT=768 MiB)",
}


def validations(model_root: Path, folder: Path, timeout: float = VERDICT_WAIT) -> Validations:
    """Validations as the workers run them: a child process per snapshot."""
    return Validations(ServingConfig(model_root=model_root, validation_dir=folder,
                                     validation_timeout=timeout,
                                     validation_memory_limit=768 * MIB))


@pytest.fixture(scope="module")
def hostile_jobs(tmp_path_factory, trained_models) -> dict[str, tuple[Validations, str]]:
    """One snapshot per hostile model, all validations started at once (they run in parallel)."""
    work = tmp_path_factory.mktemp("hostile")
    root = work / "models"
    root.mkdir()
    jobs = {}
    for payload in REASONS:
        folder = hostile(trained_models.pickled, work / payload, payload)
        snapshot = build_snapshot(root, {CLASSIFIER: folder}, "6.6.6", publish=False)
        checks = validations(root, work / "verdicts",
                             HANG_TIMEOUT if payload == "hang" else VERDICT_WAIT)
        assert checks.request(snapshot).state is State.RUNNING
        jobs[payload] = (checks, snapshot)
    return jobs


@pytest.mark.parametrize("payload", sorted(REASONS))
def test_a_model_that_breaks_its_loader_is_rejected_with_the_reason(payload, hostile_jobs):
    """The validator dies or hangs: REJECTED naming how; this process (the worker) lives on."""
    checks, snapshot = hostile_jobs[payload]
    verdict = checks.wait(snapshot, VERDICT_WAIT)
    assert verdict.state is State.REJECTED
    assert verdict.reason == REASONS[payload]
    assert checks.verdict(snapshot) == verdict, "the verdict is kept for every worker"
    assert not list(checks._folder.glob(f"{checks.key(snapshot)}.job")), "the job is over"


def test_a_job_whose_worker_died_is_taken_over_and_its_verdict_shared(
        model_root, tmp_path, trained_models):
    """A job left by a dead worker is started again; another worker reads the same verdict."""
    snapshot = build_snapshot(model_root, {CLASSIFIER: trained_models.pipeline}, "1.2.0",
                              publish=False)
    checks = validations(model_root, tmp_path / "verdicts")
    dead = os.fork()
    if dead == 0:
        os._exit(0)
    os.waitpid(dead, 0)
    job = tmp_path / "verdicts" / f"{checks.key(snapshot)}.job"
    job.write_text(json.dumps({"pid": dead, "started": time.time()}))
    first = checks.wait(snapshot, VERDICT_WAIT)
    assert first.state is State.ACCEPTED and first.versions == {CLASSIFIER: "1.2.0"}
    other_worker = validations(model_root, tmp_path / "verdicts")
    assert other_worker.request(snapshot) == first


def test_workers_asking_at_the_same_instant_start_one_validation(tmp_path, trained_models):
    """Eight askers (as workers booting together) race for one snapshot: one job runs, every
    asker reads its verdict (an empty job file was once taken for abandoned: two jobs, one of
    them finding the other's result gone, and a good snapshot refused)."""
    root = tmp_path / "models"
    snapshot = build_snapshot(root, {CLASSIFIER: trained_models.pipeline}, "1.0.0",
                              publish=False)
    runs = []

    def runner(config, snapshot_id, result, timeout) -> int:
        runs.append(snapshot_id)
        time.sleep(0.3)
        result.write_text(json.dumps({"state": "accepted", "version": "1.0.0"}))
        return 0

    askers = [Validations(ServingConfig(model_root=root, validation_dir=tmp_path / "v"),
                          runner=runner) for _ in range(8)]
    barrier = threading.Barrier(len(askers))
    verdicts = []

    def ask(asker: Validations) -> None:
        barrier.wait()
        verdicts.append(asker.wait(snapshot, 10))

    threads = [threading.Thread(target=ask, args=(a,)) for a in askers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    assert len(runs) == 1, runs
    assert [v.state for v in verdicts] == [State.ACCEPTED] * len(askers)


def test_the_fresh_validator_confines_a_model_that_tries_to_escape(tmp_path, trained_models,
                                                                   monkeypatch):
    """`python -m serving.swap.validator` (no warm validator): the model may not signal this process
    (the worker), bind, fork, write a file nor hold a memfd (EPERM each), sees no secret, and
    is refused saying so."""
    root = tmp_path / "models"
    root.mkdir()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    big = tmp_path / "big"
    folder = escaping(trained_models.pickled, tmp_path / "escapes", port, [os.getpid()], 0, big)
    snapshot = build_snapshot(root, {CLASSIFIER: folder}, "6.6.7", publish=False)
    monkeypatch.setenv("RELOAD_TOKEN", "validator-test-token-31337")
    verdict = validations(root, tmp_path / "verdicts").wait(snapshot, VERDICT_WAIT)
    assert verdict.state is State.REJECTED, verdict
    seen = attempts(verdict.reason)
    assert seen == {"env": [], "proc": [], "kill everyone": errno.EPERM,
                    f"kill {os.getpid()}": errno.EPERM, "bind": errno.EPERM,
                    "fork": errno.EPERM, "write": errno.EPERM, "memfd": errno.EPERM}
    assert not big.exists()


def _pids_groups_writable() -> bool:
    own = cgroups.own_group()
    return own is not None and os.access(own, os.W_OK)


@pytest.mark.skipif(not _pids_groups_writable(), reason="no writable pids cgroup here")
def test_a_model_starting_thousands_of_threads_gets_a_bounded_number(tmp_path, trained_models):
    """Where a pids cgroup can be made, the validation's child runs in one of its own: a load
    starting 2,000 threads gets fewer than TASKS_LIMIT, and the group is gone after."""
    root = tmp_path / "models"
    root.mkdir()
    folder = threading_model(trained_models.pickled, tmp_path / "threads")
    snapshot = build_snapshot(root, {CLASSIFIER: folder}, "6.6.8", publish=False)
    own = cgroups.own_group()
    before = set(own.glob(cgroups.PREFIX + "*"))
    verdict = validations(root, tmp_path / "verdicts").wait(snapshot, VERDICT_WAIT)
    assert verdict.state is State.REJECTED, verdict
    started = int(verdict.reason.rpartition("started ")[2].split()[0])
    assert 0 < started < cgroups.TASKS_LIMIT, verdict.reason
    assert set(own.glob(cgroups.PREFIX + "*")) <= before
