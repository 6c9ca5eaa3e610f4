"""The front's nginx.conf: every setting filled in, and accepted by the real nginx."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from serving.config import front_from_env
from serving.front.__main__ import nginx_argv, render
from serving.front.command import serving_argv
from tests.support.processes import REPO_ROOT, free_port


def test_the_rendered_config_is_complete_and_nginx_accepts_it(tmp_path):
    """No placeholder left; deadlines, cap and body limit as configured; `nginx -t` passes."""
    if shutil.which("nginx") is None:
        pytest.fail("nginx not installed: make system-deps (apt package nginx)")
    config = front_from_env({"BIND": "127.0.0.1:18080", "FRONT_HEADER_TIMEOUT": "7",
                             "FRONT_MAX_CONNECTIONS": "300", "MAX_BODY_BYTES": "1000"})
    text = render(config, tmp_path).read_text()
    assert "${" not in text
    for line in ("client_header_timeout 7s;", "worker_connections 300;",
                 "client_max_body_size 1000;", "listen 127.0.0.1:18080",
                 "server 127.0.0.1:8082;"):
        assert line in text
    done = subprocess.run([*nginx_argv(tmp_path / "nginx.conf", tmp_path), "-t"],
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize(("variable", "value", "code"), [("FRONT_HEADER_TIMEOUT", "soon", 2),
                                                         ("WEB_CONCURRENCY", "0", 1)])
def test_a_bad_setting_stops_the_front_with_a_message_naming_it(tmp_path, variable, value, code):
    """The front's own settings (exit 2) and gunicorn's (gunicorn exits, the front follows)."""
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "MODEL_ROOT": str(tmp_path),
           "BIND": f"127.0.0.1:{free_port()}", "FRONT_UPSTREAM_PORT": str(free_port()),
           "FRONT_RUN_DIR": str(tmp_path / "run"), variable: value}
    done = subprocess.run(serving_argv(), env=env, capture_output=True, text=True, timeout=60,
                          cwd=REPO_ROOT)
    assert done.returncode == code
    assert variable in done.stderr and "Traceback" not in done.stderr
