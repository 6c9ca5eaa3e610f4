"""The front's nginx.conf: every setting filled in, and accepted by the real nginx."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from serving.config import front_from_env
from serving.front.__main__ import nginx_argv, render


def test_the_rendered_config_is_complete_and_nginx_accepts_it(tmp_path):
    """No placeholder left; deadlines, cap and body limit as configured; `nginx -t` passes."""
    if shutil.which("nginx") is None:
        pytest.fail("nginx not installed: make system-deps (apt package nginx-light)")
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
