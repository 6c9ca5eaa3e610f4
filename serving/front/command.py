"""The one place that says how serving is started: the demo, the tests and the benchmarks use it."""

from __future__ import annotations

import sys

PYTHON = sys.executable
FRONT = ["-m", "serving.front"]
WORKER_PROCESS_NAME = "serving-worker"  # the front's workers in ps/psutil (15 bytes at most)


def serving_argv(python: str = PYTHON) -> list[str]:
    """The command that starts serving as deployed: `python -m serving.front`."""
    return [python, *FRONT]
