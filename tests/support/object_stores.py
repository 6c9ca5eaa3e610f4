"""An S3-compatible server (moto) and a GCS emulator as real processes, behind a fault proxy.

`running_object_stores(work)` starts `moto_server` and `gcp-storage-emulator` on loopback, each
behind a FaultProxy: the sidecar (boto3, google-cloud-storage) talks to the proxies through the
libraries' own settings, `AWS_ENDPOINT_URL` and `STORAGE_EMULATOR_HOST` (see `env`). The proxy is
the fake at the HTTP boundary: it forwards every request unchanged, except that a rule can answer
a status of its own (e.g. 403 AccessDenied, standing in for credentials the cloud refuses, which
neither emulator checks) or cut a body after some bytes (a connection lost mid-object). It leaves
out everything a real cloud adds in front of the object: TLS, signature checks, IAM policies.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import requests

from devkit.processes import REPO_ROOT, free_port, stop_process, wait_until

BUCKET = "team-models"
MOTO_SERVER = REPO_ROOT / ".venv-stores" / "bin" / "moto_server"  # see stores-requirements.txt
AWS_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
           "AWS_REGION": "us-east-1"}
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "proxy-connection", "upgrade"}


@dataclass
class Rule:
    """What the proxy does to requests whose method and path match, `times` times (0: always)."""

    path: str
    method: str = "GET"
    status: int | None = None
    body: str = ""
    cut_after: int | None = None
    times: int = 1
    seen: int = 0


@dataclass
class FaultProxy:
    """A threaded HTTP proxy to one upstream, applying the first matching rule."""

    upstream_port: int
    rules: list[Rule] = field(default_factory=list)
    hits: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, **rule: Any) -> None:
        """Apply a rule to the next matching requests."""
        with self.lock:
            self.rules.append(Rule(**rule))

    def clear(self) -> None:
        """No more faults."""
        with self.lock:
            self.rules.clear()
            self.hits.clear()

    def rule_for(self, method: str, path: str) -> Rule | None:
        """The rule applying to this request, counted as used."""
        with self.lock:
            self.hits.append(f"{method} {path}")
            for rule in self.rules:
                if rule.method == method and rule.path in path and (
                        not rule.times or rule.seen < rule.times):
                    rule.seen += 1
                    return rule
        return None


def _handler(proxy: FaultProxy) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def _forward(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else None
            rule = proxy.rule_for(self.command, self.path)
            if rule is not None and rule.status is not None:
                self._answer(rule.status, rule.body.encode())
                return
            upstream = http.client.HTTPConnection("127.0.0.1", proxy.upstream_port, timeout=30)
            headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
            try:
                upstream.request(self.command, self.path, body=body, headers=headers)
                answer = upstream.getresponse()
                data = answer.read()
            except OSError:
                self._answer(502, b"")
                return
            finally:
                upstream.close()
            self.send_response(answer.status)
            for key, value in answer.getheaders():
                if key.lower() not in HOP_BY_HOP | {"content-length"}:
                    self.send_header(key, value)
            self.send_header("Content-Length", answer.getheader("Content-Length", "0")
                             if self.command == "HEAD" else str(len(data)))
            if rule is not None and rule.cut_after is not None:
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(data[:rule.cut_after])
                self.close_connection = True
                return
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        def _answer(self, status: int, data: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json" if data[:1] == b"{"
                             else "application/xml")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _forward

    return Handler


@contextlib.contextmanager
def serving(proxy: FaultProxy) -> Iterator[str]:
    """The proxy listening on a free loopback port; its URL."""
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), _handler(proxy))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@dataclass
class ObjectStores:
    """The two started stores: their proxies, and the environment pointing clients at them."""

    s3_url: str
    gcs_url: str
    s3: FaultProxy
    gcs: FaultProxy

    @property
    def env(self) -> dict[str, str]:
        """The libraries' own settings for these servers, plus test credentials for boto3."""
        return {**AWS_ENV, "AWS_ENDPOINT_URL": self.s3_url, "STORAGE_EMULATOR_HOST": self.gcs_url}

    def clear_faults(self) -> None:
        """Both proxies forward everything again."""
        self.s3.clear()
        self.gcs.clear()

    def put_s3(self, key: str, data: bytes) -> str:
        """Store an object in the S3 bucket; its VersionId."""
        answer = requests.put(f"{self.s3_url}/{BUCKET}/{key}", data=data, timeout=30,
                              headers={"Authorization": _anonymous_s3()})
        answer.raise_for_status()
        return answer.headers.get("x-amz-version-id", "")

    def put_gcs(self, key: str, data: bytes) -> str:
        """Store an object in the GCS bucket; its generation."""
        answer = requests.post(f"{self.gcs_url}/upload/storage/v1/b/{BUCKET}/o",
                               params={"uploadType": "media", "name": key}, data=data,
                               timeout=30)
        answer.raise_for_status()
        return str(answer.json()["generation"])


def _anonymous_s3() -> str:
    """An Authorization header moto accepts without checking (it does not verify signatures)."""
    return ("AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/s3/aws4_request, "
            "SignedHeaders=host, Signature=0")


@contextlib.contextmanager
def running_object_stores(work: Path) -> Iterator[ObjectStores]:
    """moto_server and gcp-storage-emulator as processes, a versioned bucket in each."""
    bin_dir = Path(sys.executable).parent
    moto_port, gcs_port = free_port(), free_port()
    assert MOTO_SERVER.exists(), f"{MOTO_SERVER} is missing: run `make .venv-stores/.installed`"
    work.mkdir(parents=True, exist_ok=True)
    with open(work / "moto.log", "wb") as moto_log, open(work / "gcs.log", "wb") as gcs_log:
        moto = subprocess.Popen([str(MOTO_SERVER), "-H", "127.0.0.1", "-p",
                                 str(moto_port)], stdout=moto_log, stderr=subprocess.STDOUT)
        gcs = subprocess.Popen([str(bin_dir / "gcp-storage-emulator"), "start", "-H",
                                "127.0.0.1", "--port", str(gcs_port), "-M", "-q",
                                "--default-bucket", BUCKET], cwd=work,
                               stdout=gcs_log, stderr=subprocess.STDOUT)
        try:
            s3, gcs_proxy = FaultProxy(moto_port), FaultProxy(gcs_port)
            with serving(s3) as s3_url, serving(gcs_proxy) as gcs_url:
                stores = ObjectStores(s3_url, gcs_url, s3, gcs_proxy)
                wait_until(lambda: _up(f"{s3_url}/moto-api/"), timeout=60)
                wait_until(lambda: _up(f"{gcs_url}/storage/v1/b/{BUCKET}"), timeout=60)
                _create_versioned_bucket(s3_url)
                yield stores
        finally:
            stop_process(moto)
            stop_process(gcs)


def _up(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).status_code < 500
    except requests.RequestException:
        return False


def _create_versioned_bucket(url: str) -> None:
    headers = {"Authorization": _anonymous_s3()}
    requests.put(f"{url}/{BUCKET}", timeout=30, headers=headers).raise_for_status()
    versioning = ('<VersioningConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
                  "<Status>Enabled</Status></VersioningConfiguration>")
    requests.put(f"{url}/{BUCKET}?versioning", data=versioning, timeout=30,
                 headers=headers).raise_for_status()


def remote_listing(name: str, link: str, size: int, **metadata: Any) -> dict[str, Any]:
    """An upload's `assets` entry for a remote asset, as Comet lists one synced from a bucket."""
    return {"fileName": name, "fileSize": size, "link": link,
            "metadata": json.dumps({"synced": True, "file_size": size, **metadata})}
