"""The front (`python -m serving.front`, granian): its settings, and what it does on its own."""

from __future__ import annotations

import os
import socket
import subprocess

import pytest

from serving.front.command import serving_argv
from tests.support.processes import REPO_ROOT, free_port


def _front_env(tmp_path, **variables: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO_ROOT), "MODEL_ROOT": str(tmp_path),
            "BIND": f"127.0.0.1:{free_port()}", **variables}


@pytest.mark.parametrize(("variable", "value"), [("FRONT_HEADER_TIMEOUT", "soon"),
                                                 ("WEB_CONCURRENCY", "0"),
                                                 ("FRONT_MAX_CONNECTIONS", "-5")])
def test_a_bad_setting_stops_the_front_with_a_message_naming_it(tmp_path, variable, value):
    """Exit 2, the variable named, no traceback."""
    done = subprocess.run(serving_argv(), env=_front_env(tmp_path, **{variable: value}),
                          capture_output=True, text=True, timeout=60, cwd=REPO_ROOT)
    assert done.returncode == 2
    assert variable in done.stderr and "Traceback" not in done.stderr


def test_an_admin_port_in_use_stops_the_front_with_a_message_naming_it(tmp_path):
    """Another process holds ADMIN_PORT: exit 2 naming it, not a worker pool without it."""
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen(1)
    port = holder.getsockname()[1]
    try:
        done = subprocess.run(serving_argv(), env=_front_env(tmp_path, ADMIN_PORT=str(port)),
                              capture_output=True, text=True, timeout=60, cwd=REPO_ROOT)
    finally:
        holder.close()
    assert done.returncode == 2
    assert f"ADMIN_PORT {port}" in done.stderr and "Traceback" not in done.stderr
