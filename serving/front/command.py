"""The one place that says how serving is started: the demo, the tests and the benchmarks use it.

`python -m serving.front` (the image's command) is granian serving the app as deployed;
`serving_argv(front=False)` is gunicorn with sync workers, the server serving ran on before.
"""

from __future__ import annotations

import sys

PYTHON = sys.executable
GUNICORN = ["-m", "gunicorn", "--config", "python:serving.gunicorn_conf", "serving.wsgi:app"]
FRONT = ["-m", "serving.front"]
WORKER_PROCESS_NAME = "serving-worker"  # the front's workers in ps/psutil (15 bytes at most)


def serving_argv(front: bool = True, python: str = PYTHON) -> list[str]:
    """The command that starts serving: as deployed (granian), or gunicorn alone."""
    return [python, *(FRONT if front else GUNICORN)]
