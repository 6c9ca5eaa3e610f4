"""The sidecar's own HTTP endpoints: /healthz, /readyz, /metrics, /status, and for peers
/-/files/<snapshot>/<model>/<path> (files of complete snapshots, peer.py), POST /-/poll-now
(a webhook's wake-up) and POST /-/guard-figures (a follower's champion figures for the leader's
promotion guard, guard_reports.py), all only with a Bearer token: the reload token (serving's
webhook), or the peer credential derived from DECISION_KEY (the Deployment's other sidecars).

The server is bounded (bounded_http.py): at most SIDECAR_MAX_CONNECTIONS connections are
served at once, each given SIDECAR_CONNECTION_TIMEOUT seconds per read or write; more are
answered 503 and closed at once, so idle connections can neither pile up threads nor use the
file descriptors the sync loop needs."""

from __future__ import annotations

import contextlib
import json
import resource
import shutil
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from typing import cast

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from common import bearer
from model_contract import logs
from registry_sync.cluster import peer
from registry_sync.guard import reports as guard_reports

from ..cluster.decision_seal import peer_token
from ..errors import SecretUnavailable
from ..sync.daemon import Daemon
from . import status
from .bounded_http import BoundedHTTPServer

log = logs.get(__name__)
MAX_CONNECTIONS, CONNECTION_TIMEOUT = 64, 10.0


def health(daemon: Daemon) -> tuple[bool, str]:
    """Healthy while the loop makes progress: its heartbeat is recent enough."""
    config = daemon.config
    allowed = 3 * max(config.interval, config.max_backoff) + config.comet.download_timeout
    age = daemon.clock() - daemon.heartbeat
    detail = f"last loop activity {age:.0f}s ago (allowed {allowed:.0f}s)"
    error = daemon.state.last_error or {}
    if error.get("type") == "StatusUnknown":  # alive, but serving nothing new until it is fixed
        detail += f"; {error.get('message')}"
    if age > allowed:
        return False, detail
    if daemon.cluster is not None:
        ok, why = daemon.cluster.health()
        if not ok:
            return False, why
    return True, detail


class SidecarServer(BoundedHTTPServer):
    """The bounded server of one daemon's endpoints: its handlers reach the daemon here."""

    def __init__(self, address: tuple[str, int], daemon: Daemon):
        self.daemon = daemon
        super().__init__(address, Handler, MAX_CONNECTIONS)


class Handler(BaseHTTPRequestHandler):
    """One request to the sidecar's endpoints, answered for the server's daemon."""

    timeout = CONNECTION_TIMEOUT  # per read and write: an idle client is let go

    @property
    def daemon(self) -> Daemon:
        return cast(SidecarServer, self.server).daemon

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        route = _GET_ROUTES.get(path)
        if route is not None:
            route(self)
        elif path.startswith(peer.FILES_PREFIX):
            self._file(path)
        else:
            self._send(404, {"error": "not found", "paths": ["/healthz", "/readyz",
                                                             "/metrics", "/status"]})

    def do_POST(self) -> None:
        path = self.path.split("?", 1)[0]
        route = _POST_ROUTES.get(path)
        if route is None:
            self._send(404, {"error": "not found",
                             "paths": ["/-/poll-now", guard_reports.PATH]})
        elif self._authorized():
            route(self)

    def _healthz(self) -> None:
        ok, detail = health(self.daemon)
        self._send(200 if ok else 503, {"ok": ok, "detail": detail})

    def _readyz(self) -> None:
        ready = self.daemon.has_good_snapshot()
        self._send(200 if ready else 503, {"ready": ready})

    def _status(self) -> None:
        daemon = self.daemon
        report = status.report(daemon.config.model_root, daemon.state)
        if daemon.cluster is not None:
            report["cluster"] = daemon.cluster.describe()
        tokens = _tokens(daemon)
        self._send(200, report if not tokens or self._holds(tokens) else trimmed(report))

    def _metrics(self) -> None:
        body = generate_latest(self.daemon.syncer.metrics.registry)
        self._raw(200, body, CONTENT_TYPE_LATEST)

    def _poll_now(self) -> None:
        self.daemon.poll_now()
        self._send(202, {"accepted": True})

    def _report(self) -> None:
        """A follower's champion figures, for the leader's guard (guard_reports)."""
        guard = self.daemon.syncer.guard
        if guard is None or guard.reports is None:
            self._send(404, {"error": "no guard here takes reports"})
            return
        length = self.headers.get("Content-Length", "")
        if not length.isdigit() or int(length) > guard_reports.MAX_REPORT_BYTES:
            self._send(413, {"error": f"Content-Length: at most "
                                      f"{guard_reports.MAX_REPORT_BYTES} bytes"})
            return
        try:
            pod, figures = guard_reports.decode(self.rfile.read(int(length)))
        except guard_reports.ReportError as exc:
            self._send(400, {"error": str(exc)})
            return
        guard.reports.put(pod, figures)
        self._send(202, {"accepted": True})

    def _authorized(self) -> bool:
        """True for the reload token or the peer credential; else 401 (403: none set)."""
        tokens = _tokens(self.daemon)
        if not tokens:
            self._send(403, {"error": "peer endpoints are off: no RELOAD_TOKEN"})
            return False
        if not self._holds(tokens):
            self._send(401, {"error": "missing or wrong token"})
            return False
        return True

    def _holds(self, tokens: list[str]) -> bool:
        return bearer.holds(self.headers.get("Authorization"), tokens)

    def _file(self, path: str) -> None:
        if not self._authorized():
            return
        found = peer.find_file(self.daemon.config.model_root, path)
        try:
            handle = open(found, "rb") if found else None  # noqa: SIM115 - closed below
        except OSError:
            handle = None
        if handle is None:
            self._send(404, {"error": "no such file in a complete snapshot"})
            return
        with handle:
            size = handle.seek(0, 2)
            handle.seek(0)
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(size))
            self.end_headers()
            shutil.copyfileobj(handle, self.wfile, 256 * 1024)

    def _send(self, code: int, body: dict) -> None:
        self._raw(code, json.dumps(body, default=str).encode(), "application/json")

    def _raw(self, code: int, body: bytes, content_type: str) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args) -> None:  # probes every few seconds: no noise
        pass


_GET_ROUTES: dict[str, Callable[[Handler], None]] = {
    "/healthz": Handler._healthz, "/readyz": Handler._readyz,
    "/status": Handler._status, "/metrics": Handler._metrics,
}
_POST_ROUTES: dict[str, Callable[[Handler], None]] = {
    "/-/poll-now": Handler._poll_now, guard_reports.PATH: Handler._report,
}


PUBLIC_STATUS = ("ready", "published", "desired", "consecutiveFailures", "lastSuccessAt")


def trimmed(report: dict) -> dict:
    """/status for a caller without a token: what is served and whether it keeps up; no error
    texts, paths, refusals or cluster details (send the reload token for those)."""
    shown = {key: report.get(key) for key in PUBLIC_STATUS}
    cluster = report.get("cluster")
    if isinstance(cluster, dict):
        shown["cluster"] = {"leader": cluster.get("leader")}
    shown["trimmed"] = "send the reload token as a Bearer token for the whole status"
    return shown


def _tokens(daemon: Daemon) -> list[str]:
    """The tokens accepted now (files re-read: rotation); none while unreadable."""
    tokens = []
    with contextlib.suppress(SecretUnavailable):  # mid-rotation: refused until it is back
        tokens.append(daemon.config.read_reload_token())
    key = daemon.config.read_decision_key() if daemon.cluster is not None else b""
    if key:
        tokens.append(peer_token(key))
    return [t for t in tokens if t]


def spare_descriptors() -> None:
    """Raise the soft file-descriptor limit to the hard one: the loop must never run short."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = hard if hard != resource.RLIM_INFINITY else max(soft, 65536)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
        except (ValueError, OSError) as exc:
            log.warning("descriptor_limit_unchanged", soft=soft, hard=hard, error=str(exc))


def start(daemon: Daemon, host: str, port: int) -> SidecarServer:
    """Serve the endpoints on a background thread; return the server (shutdown() stops it)."""
    server = SidecarServer((host, port), daemon)
    threading.Thread(target=server.serve_forever, name="ops-server", daemon=True).start()
    return server
