"""200 slow connections (headers trickled, bodies trickled, idle after connect) against serving as
deployed (the granian front, 2 workers) while a normal load runs: no normal request fails,
their p99 stays within 2x (plus 100 ms of noise on this shared machine) of the same load alone,
and the server closes every slow connection within its configured deadlines. A body over
MAX_BODY_BYTES is refused by the front itself, with the app's JSON error.

The deadlines are shortened (3 s for a header, 1 s for a whole body) and each slow client sends
one byte every 1.5 s, so a trickled body takes longer than the front allows; the benchmark (part
`front`) measures the deployed defaults.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from devkit.load import Load
from devkit.processes import wait_until
from devkit.slow_clients import KINDS, SlowClients
from devkit.snapshots import build_snapshot
from tests.support.serving_process import Serving, launch

HEADER_TIMEOUT, BODY_TIMEOUT = 3, 1
SLOW, TRICKLE = 200, 1.5
SLACK = 4.0  # seconds: this machine is loaded


@pytest.fixture(scope="module")
def serving(tmp_path_factory, trained_models) -> Iterator[Serving]:
    """Serving behind its front with short deadlines, version 1.0.0 of our layout."""
    work = tmp_path_factory.mktemp("slow-clients")
    root = work / "models"
    build_snapshot(root, {"diamonds-classifier": trained_models.pipeline}, "1.0.0")
    server = launch(root, work, FRONT_HEADER_TIMEOUT=str(HEADER_TIMEOUT),
                    FRONT_BODY_TIMEOUT=str(BODY_TIMEOUT))
    yield server
    server.stop()


def _p99(load: Load) -> float:
    durations = sorted(a.ended - a.started for a in load.answers)
    return durations[min(len(durations) - 1, int(len(durations) * 0.99))]


def test_slow_clients_cost_only_their_own_connections(serving):
    """Zero failed normal requests with 200 slow connections held; each slow one closed in time."""
    with Load(serving.url, clients=2, seconds=4, pause=0.005) as alone:
        alone.wait()
    alone.assert_all_ok()
    port = int(serving.url.rpartition(":")[2])
    with SlowClients("127.0.0.1", port, count=SLOW, seconds=40, interval=TRICKLE) as slow:
        with Load(serving.url, clients=2, seconds=4, pause=0.005) as held:
            held.wait()
        held.assert_all_ok()
        wait_until(lambda: slow.open_count() == 0, HEADER_TIMEOUT + 3 * SLACK,
                   what="the server to close every slow connection")
    assert _p99(held) <= 2 * _p99(alone) + 0.1, (_p99(held), _p99(alone))
    for kind, deadline in zip(KINDS, (HEADER_TIMEOUT, BODY_TIMEOUT + TRICKLE, HEADER_TIMEOUT),
                              strict=True):
        closed = slow.closed_after(kind)
        assert len(closed) >= SLOW // len(KINDS), kind
        assert max(closed) <= deadline + SLACK, (kind, max(closed))


def test_a_body_over_the_limit_gets_the_apps_json_error_from_the_front(serving):
    """The front refuses it before the app runs, with the same JSON as the app's 413."""
    too_big = b'{"instances": [' + b" " * (2 * 1024 * 1024) + b"]}"
    response = serving.session.post(serving.url + "/api/v1/predict", data=too_big, timeout=30,
                                    headers={"Content-Type": "application/json"})
    assert response.status_code == 413
    assert response.json()["error"] == "request_entity_too_large"
    assert [e["field"] for e in response.json()["errors"]] == ["body"]
    assert response.json()["message"] == "the request body is larger than 2097152 bytes"
