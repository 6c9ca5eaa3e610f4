"""Fixtures of the serving tests: trained models, a MODEL_ROOT, the app and its client."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from flask import Flask

from devkit.models import TrainedModels, trained_models  # noqa: F401
from devkit.snapshots import build_snapshot
from serving.config import ServingConfig
from serving.http.app import create_app
from tests.support.diamonds import AUTH, CLASSIFIER, TOKEN, VALID  # noqa: F401


@pytest.fixture
def model_root(tmp_path: Path) -> Path:
    """An empty MODEL_ROOT."""
    root = tmp_path / "models"
    root.mkdir()
    return root


@pytest.fixture
def publish(model_root: Path, trained_models: TrainedModels) -> Callable[..., str]:  # noqa: F811
    """Build and publish a snapshot of our layout (or given folders); return its id."""

    def publish_(version: str = "1.0.0", models: dict[str, Path] | None = None,
                 publish: bool = True) -> str:
        return build_snapshot(model_root, models or {CLASSIFIER: trained_models.pipeline},
                              version, publish=publish)

    return publish_


@pytest.fixture
def make_app(model_root: Path, tmp_path: Path) -> Iterator[Callable[..., Flask]]:
    """Create apps on model_root, without the background watcher unless asked.

    The validator runs in-process (isolate_validation=False) and the start waits for its
    verdict: these apps test the views; the validator process is tested in test_validator.py.
    """
    made: list[Flask] = []

    def make(**fields) -> Flask:
        settings = ServingConfig(**{"model_root": model_root, "reload_token": TOKEN,
                                    "watch": False, "isolate_validation": False,
                                    "validation_wait": 60.0,
                                    "validation_dir": tmp_path / "verdicts",
                                    # a busy machine must not turn a slow answer into a 504
                                    "predict_timeout": 120.0, **fields})
        app = create_app(settings)
        made.append(app)
        return app

    yield make
    for app in made:
        stop_app(app)


@pytest.fixture(scope="module")
def module_app(tmp_path_factory, trained_models: TrainedModels) -> Iterator[Flask]:  # noqa: F811
    """An app serving version 1.0.0 of our layout, one for the module (settings as make_app's)."""
    root = tmp_path_factory.mktemp("served")
    build_snapshot(root, {CLASSIFIER: trained_models.pipeline}, "1.0.0")
    app = create_app(ServingConfig(model_root=root, reload_token=TOKEN, watch=False,
                                   isolate_validation=False, validation_wait=60.0,
                                   validation_dir=root / "verdicts", predict_timeout=120.0))
    yield app
    stop_app(app)


def stop_app(app: Flask) -> None:
    """Stop an app's background threads (its roles' watcher, its holder's)."""
    app.extensions["serving.challenger.roles"].stop()
    app.extensions["serving.swap.holder"].stop()


@pytest.fixture
def client(make_app, publish):
    """A test client of an app serving version 1.0.0 of our layout."""
    publish("1.0.0")
    return make_app().test_client()


@pytest.fixture(scope="session")
def served(tmp_path_factory, trained_models):  # noqa: F811
    """The front with two workers on loopback, serving version 2.0.0 of our layout at first,
    /metrics on its METRICS_PORT (metrics_url) as in the pod.

    /-/validate answers 202 after 2 s; the validator process gets 20 s (hanging models).
    """
    from tests.support.serving_process import start

    work = tmp_path_factory.mktemp("served")
    root = work / "models"
    root.mkdir()
    from devkit.processes import free_port

    metrics_port = free_port()
    server = start(root, work, "2.0.0", {CLASSIFIER: trained_models.pipeline},
                   VALIDATION_WAIT="2", VALIDATION_TIMEOUT="20", METRICS_PORT=str(metrics_port))
    server.metrics_url = f"http://127.0.0.1:{metrics_port}"
    yield server
    server.stop()
