"""On-premises settings with the SDK's names: the gateway's allow header and a custom CA bundle.

The server is a small HTTPS stand-in for an on-premises Comet behind a gateway (what cannot run
here): a self-signed certificate made by `openssl` for 127.0.0.1, answering isAlive only to
requests carrying the allow header. It leaves out everything else of Comet.
"""

from __future__ import annotations

import argparse
import json
import ssl
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from registry_sync import config
from registry_sync.errors import CometUnavailable, ConfigError, Unauthorized
from registry_sync.registries.comet.client import CometClient

ALLOW = ("X-Gateway-Allow", "gateway-pass-7f3a")


def self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate (its own CA) and key for 127.0.0.1."""
    cert, key = folder / "ca.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    return cert, key


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[tuple[str, Path, list[dict]]]:
    """(https URL, the CA file, headers seen) of the stand-in."""
    cert, key = self_signed(tmp_path)
    seen: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(dict(self.headers))
            allowed = self.headers.get(ALLOW[0]) == ALLOW[1]
            body = json.dumps({"version": "4.20.500"} if allowed else {"msg": "blocked"})
            self.send_response(200 if allowed else 403)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body.encode())

        def log_message(self, *_: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"https://127.0.0.1:{server.server_address[1]}", cert, seen
    server.shutdown()
    server.server_close()


def settings_from(env: dict[str, str]) -> config.CometSettings:
    """The Comet settings as the sidecar reads them from its environment."""
    values = config.read(argparse.Namespace(), env, config.COMET_NAMES)
    return config.comet_settings(values)


def client(url: str, **env: str) -> CometClient:
    comet = settings_from({"COMET_URL_OVERRIDE": url, "COMET_API_KEY": "k",
                           "COMET_WORKSPACE": "ws", **env})
    return CometClient(comet, sleep=lambda _: None, attempts=1)


def test_the_custom_ca_bundle_and_the_allow_header_reach_an_onprem_server(gateway):
    url, ca, seen = gateway
    both = {"COMET_INCLUDE_CUSTOM_CA_BUNDLE": str(ca), "COMET_ALLOW_HEADER_NAME": ALLOW[0],
            "COMET_ALLOW_HEADER_VALUE": ALLOW[1]}
    assert client(url, **both).server_info() == {"version": "4.20.500"}
    assert seen[-1][ALLOW[0]] == ALLOW[1] and seen[-1]["Authorization"] == "k"
    folder = ca.parent / "cas"
    folder.mkdir()
    (folder / "ours.pem").write_bytes(ca.read_bytes())
    assert client(url, **{**both, "COMET_INCLUDE_CUSTOM_CA_BUNDLE": str(folder)}).server_info()
    with pytest.raises(CometUnavailable):  # the public roots alone do not trust it
        client(url, COMET_ALLOW_HEADER_NAME=ALLOW[0],
               COMET_ALLOW_HEADER_VALUE=ALLOW[1]).server_info()
    with pytest.raises(Unauthorized):  # the gateway refuses a request without its header
        client(url, COMET_INCLUDE_CUSTOM_CA_BUNDLE=str(ca)).server_info()


@pytest.mark.parametrize(("env", "named"), [
    ({"COMET_ALLOW_HEADER_NAME": "X-Allow"}, "COMET_ALLOW_HEADER_VALUE is required"),
    ({"COMET_ALLOW_HEADER_VALUE": "v"}, "COMET_ALLOW_HEADER_NAME is required"),
    ({"COMET_ALLOW_HEADER_NAME": "X Allow:", "COMET_ALLOW_HEADER_VALUE": "v"},
     "COMET_ALLOW_HEADER_NAME is"),
    ({"COMET_INCLUDE_CUSTOM_CA_BUNDLE": "/no/such/bundle.pem"},
     "COMET_INCLUDE_CUSTOM_CA_BUNDLE=/no/such/bundle.pem"),
])
def test_bad_onprem_settings_fail_at_start_naming_the_variable(env, named):
    with pytest.raises(ConfigError, match=named):
        settings_from({"COMET_API_KEY": "k", "COMET_WORKSPACE": "ws", **env})


def test_a_file_that_is_no_certificate_is_refused_naming_the_variable(tmp_path):
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate")
    with pytest.raises(ConfigError, match=r"COMET_INCLUDE_CUSTOM_CA_BUNDLE: .* not a readable"):
        settings_from({"COMET_API_KEY": "k", "COMET_WORKSPACE": "ws",
                       "COMET_INCLUDE_CUSTOM_CA_BUNDLE": str(junk)})
