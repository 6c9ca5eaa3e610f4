"""The end-to-end fault suite: one whole pod for the session, reset before every test.

The pod (tests.support.pod_system) is a local registry with fault injection, the sidecar and
gunicorn with two workers, all real processes on 127.0.0.1. Starting gunicorn costs seconds, so
the scenarios share it; `pod` puts it back in its normal state before each test (registry up, no
faults, the right API key, the default sidecar, serving up). After each test, every log line the
pod wrote is scanned for the suite's distinctive secrets (error bodies, metrics and statuses are
scanned as they are fetched).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from devkit.models import TrainedModels, trained_models  # noqa: F401
from tests.support.pod_system import SECRETS, Folders, PodSystem, running_pod
from tests.support.secret_scan import SecretScan


@pytest.fixture(scope="session")
def secret_scan() -> SecretScan:
    """The scan every output of the suite goes through."""
    return SecretScan(SECRETS)


@pytest.fixture(scope="session")
def pod_session(tmp_path_factory: pytest.TempPathFactory, trained_models: TrainedModels,  # noqa: F811
                secret_scan: SecretScan) -> Iterator[PodSystem]:
    """The whole pod, started once: 1.0.0 of the pipeline in Production, synced, served."""
    folders = Folders(trained_models.pipeline, trained_models.alternative, trained_models.seed)
    with running_pod(tmp_path_factory.mktemp("pod"), folders, secret_scan) as pod:
        yield pod


@pytest.fixture
def pod(pod_session: PodSystem, secret_scan: SecretScan) -> Iterator[PodSystem]:
    """The pod in its normal state; its new log lines are scanned for secrets afterwards."""
    pod_session.reset()
    yield pod_session
    secret_scan.check_files()
