"""A promotion every few seconds for a minute while clients hit the JSON API: zero non-2xx, and
once a publication has settled (every worker within 1 s), no client sees an older version."""

from __future__ import annotations

import time

import pytest

from registry_sync.registries.values import semver_key

PERIOD = 4.0
DURATION = 60.0
SETTLE = 1.0


@pytest.mark.slow
def test_a_promotion_every_four_seconds_for_a_minute_under_load(pod):
    """Every version is served in turn; versions seen never go backwards after settling."""
    folders = [pod.folders.pipeline, pod.folders.alternative]
    publications: list[tuple[str, float]] = []  # version, when seen published (monotonic)
    with pod.load(clients=3, pause=0.005, seconds=DURATION + 20, max_requests=60_000) as load:
        started = time.monotonic()
        while time.monotonic() - started < DURATION:
            due = time.monotonic() + PERIOD
            version = pod.promote(folders[len(publications) % 2])
            pod.wait_published(version, timeout=PERIOD)
            publications.append((version, time.monotonic()))
            time.sleep(max(0.0, due - time.monotonic()))
        time.sleep(SETTLE + 0.5)
    load.assert_all_ok(at_least=2000)
    pod.assert_only_published_answered(load)
    answers = load.answers
    for version, published_at in publications:
        settled = [a for a in answers if a.started > published_at + SETTLE]
        older = [a for a in settled if semver_key(a.version) < semver_key(version)]
        assert not older, f"{len(older)} answers older than {version} after it settled: " \
                          f"{older[:3]}"
    served = load.versions()
    assert all(version in served for version, _ in publications)
    assert len(publications) >= DURATION / PERIOD - 1
