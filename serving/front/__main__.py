"""`python -m serving.front`: nginx on BIND, gunicorn behind it on 127.0.0.1, as one process tree.

nginx reads every request whole (header and body deadlines, a connection cap, keep-alive limits:
nginx.conf) and only then hands it to a gunicorn sync worker over loopback, so a slow client
holds an nginx connection, never a worker. gunicorn also binds ADMIN_PORT directly, for the
sidecar. If either process exits, the other is stopped and the exit code passed on. SIGTERM
drains: nginx stops accepting and finishes what it holds (SIGQUIT), then gunicorn finishes
its requests in flight (SIGTERM), within FRONT_DRAIN_SECONDS.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from string import Template

from serving.config import FrontConfig, front_from_env
from serving.errors import ConfigError
from serving.front.command import serving_argv

TEMPLATE = Path(__file__).with_name("nginx.conf")
# nginx holds a chunked body in its buffer with the chunk framing (size lines, CRLFs): this much
# more than MAX_BODY_BYTES keeps any body of sane chunks (from ~100 bytes up) in memory, so the 413
# for one over the limit is decided there, never after spilling to a temporary file.
CHUNK_FRAMING_SHARE = 8
NGINX_LEVELS = {"debug": "info", "info": "warn", "warning": "warn", "error": "error"}


def render(config: FrontConfig, run_dir: Path) -> Path:
    """Write nginx.conf for these settings into run_dir and return its path."""
    text = Template(TEMPLATE.read_text()).safe_substitute(
        RUN_DIR=str(run_dir), NGINX_LOG_LEVEL=NGINX_LEVELS[config.log_level],
        FRONT_MAX_CONNECTIONS=config.max_connections, BIND=config.bind,
        FRONT_HEADER_TIMEOUT=config.header_timeout, FRONT_BODY_TIMEOUT=config.body_timeout,
        FRONT_KEEPALIVE_TIMEOUT=config.keepalive_timeout, MAX_BODY_BYTES=config.max_body_bytes,
        BODY_BUFFER_BYTES=config.max_body_bytes + config.max_body_bytes // CHUNK_FRAMING_SHARE,
        FRONT_UPSTREAM_PORT=config.upstream_port, FRONT_DRAIN_SECONDS=config.drain_seconds)
    path = run_dir / "nginx.conf"
    path.write_text(text)
    return path


def nginx_argv(conf: Path, run_dir: Path) -> list[str]:
    """nginx in the foreground on this config; its own error log to stderr from the start."""
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    return [binary, "-c", str(conf), "-p", str(run_dir), "-e", "stderr"]


def _die_with_parent() -> None:
    """In a child before exec: get SIGTERM if this supervisor dies, even by SIGKILL."""
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # 1: PR_SET_PDEATHSIG


def _accepts(port: int) -> bool:
    """True when something listens on 127.0.0.1:port."""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


class Front:
    """gunicorn and nginx as children; stops both when either ends or a stop is asked."""

    def __init__(self, config: FrontConfig, run_dir: Path):
        self.config, self.run_dir = config, run_dir
        # A plain flag: set from a signal handler, where taking a lock (an Event's) could
        # deadlock against the main thread holding it.
        self.stopping = False
        self.gunicorn: subprocess.Popen | None = None
        self.nginx: subprocess.Popen | None = None

    def start(self) -> None:
        """gunicorn first, then nginx on the public address once gunicorn accepts connections."""
        env = {**os.environ, "BIND": f"127.0.0.1:{self.config.upstream_port}"}
        self.gunicorn = subprocess.Popen(serving_argv(front=False), env=env,
                                         stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent)
        while self.gunicorn.poll() is None and not self.stopping and \
                not _accepts(self.config.upstream_port):
            time.sleep(0.1)
        if self.gunicorn.poll() is not None or self.stopping:
            return  # gunicorn failed (its message is on stderr) or a stop came first
        conf = render(self.config, self.run_dir)
        self.nginx = subprocess.Popen(nginx_argv(conf, self.run_dir), stdin=subprocess.DEVNULL,
                                      preexec_fn=_die_with_parent)

    def wait(self) -> int:
        """Until a stop is asked or a child exits; then drain both; the exit code to use."""
        children = [c for c in (self.gunicorn, self.nginx) if c is not None]
        while not self.stopping and all(c.poll() is None for c in children):
            time.sleep(0.2)
        failed = next((c.returncode for c in children if c.poll() not in (None, 0)), 0)
        self.drain()
        return failed

    def drain(self) -> None:
        """nginx finishes its connections (QUIT), then gunicorn its requests (TERM)."""
        deadline = time.monotonic() + self.config.drain_seconds
        for child, sig in ((self.nginx, signal.SIGQUIT), (self.gunicorn, signal.SIGTERM)):
            if child is None or child.poll() is not None:
                continue
            child.send_signal(sig)
            try:
                child.wait(max(0.5, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()


def main() -> int:
    """Run the front until SIGTERM / SIGINT or until one of its processes ends."""
    try:
        config = front_from_env()
    except ConfigError as exc:
        print(f"serving.front: {exc}", file=sys.stderr)
        return 2
    run_dir = config.run_dir or Path(tempfile.mkdtemp(prefix="serving-front-"))
    run_dir.mkdir(parents=True, exist_ok=True)
    run_dir.chmod(0o755)  # nginx's workers (another user when started as root) read and write here
    front = Front(config, run_dir)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: setattr(front, "stopping", True))
    front.start()
    return front.wait()


if __name__ == "__main__":
    sys.exit(main())
