"""The local registry as a real process for tests: a handle, a starter and pytest fixtures.

Reuse from any test folder's conftest.py:

    from devkit.registry import local_registry, local_registry_server  # noqa: F401

`local_registry_server` (module scope) runs one `local-registry` process per test
module; `local_registry` (per test) is the same handle with fault rules cleared and request
counts reset. Models persist across the tests of a module: give each test its own model names
(`unique_name`).

The registry answers `registry-model/details` in the shape LOCAL_REGISTRY_DETAILS_SHAPE names:
"sdk" (the default in tests, tests/conftest.py: no status or tags, as the SDK's docstring shows,
the stricter referee) or "full" (`LOCAL_REGISTRY_DETAILS_SHAPE=full make test` runs the
suite in that shape).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
import zipfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

from devkit.processes import stop_process

REPO_ROOT = Path(__file__).resolve().parents[1]
API = "/api/rest/v2"
DEFAULT_API_KEY = "local-registry-test-key"
DEFAULT_WORKSPACE = "test-ws"
MEMBER_API_KEY = "local-registry-member-key"  # a member's key: its promotions may need review
START_TIMEOUT = 20.0
ASSET_DOWNLOAD = "experiment/asset/get-asset"  # the sidecar's download path, one asset a call
DOWNLOAD_PATHS = (ASSET_DOWNLOAD, "registry-model/item/download")


def unique_name(prefix: str = "model") -> str:
    """A registry model name no other test uses."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def zip_bytes(files: Mapping[str, bytes | str], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    """A zip (deflated unless told) holding the given entry names and contents."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as archive:
        for name, content in files.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def zip_folder(folder: Path, target: Path) -> Path:
    """Zip a folder's files into target, entries relative to the folder (no wrapping folder)."""
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                archive.write(path, path.relative_to(folder).as_posix())
    return target


@dataclass
class LocalRegistry:
    """A running local registry process and helpers to drive it over HTTP."""

    url: str
    api_key: str
    workspace: str
    data_dir: Path
    log_path: Path
    process: subprocess.Popen
    workspaces: tuple[str, ...] = ()
    details_shape: str | None = None
    session: requests.Session = field(default_factory=requests.Session, repr=False)

    @property
    def port(self) -> int:
        """The port the registry listens on."""
        return int(self.url.rsplit(":", 1)[1])

    @property
    def comet_url_override(self) -> str:
        """The COMET_URL_OVERRIDE value that points a Comet client at this registry."""
        return f"{self.url}/clientlib/"

    @property
    def api_url(self) -> str:
        """The root of the REST API: {url}/api/rest/v2."""
        return self.url + API

    @property
    def headers(self) -> dict[str, str]:
        """The Authorization header of this registry's API key."""
        return {"Authorization": self.api_key}

    def env(self) -> dict[str, str]:
        """COMET_URL_OVERRIDE, COMET_API_KEY and COMET_WORKSPACE for a client process."""
        return {"COMET_URL_OVERRIDE": self.comet_url_override, "COMET_API_KEY": self.api_key,
                "COMET_WORKSPACE": self.workspace}

    def get(self, endpoint: str, **params: Any) -> requests.Response:
        """GET {api_url}/{endpoint} with the API key."""
        return self.session.get(f"{self.api_url}/{endpoint}", params=params,
                                headers=self.headers, timeout=30)

    def post(self, endpoint: str, payload: Any) -> requests.Response:
        """POST a JSON payload to {api_url}/{endpoint} with the API key."""
        return self.session.post(f"{self.api_url}/{endpoint}", json=payload,
                                 headers=self.headers, timeout=30)

    def register_zip(self, model: str, version: str, data: bytes | Path, *,
                     status: str = "None", tags: Iterable[str] = (), **params: Any) -> dict:
        """Upload raw bytes (or a file, streamed) as a version, stored byte for byte."""
        query = {"workspaceName": params.pop("workspace", self.workspace),
                 "registryModelName": model, "version": version, "status": status,
                 "tags": ",".join(tags), **{k: v for k, v in params.items() if v is not None}}
        url = f"{self.api_url}/write/registry-model/item/upload"
        with contextlib.ExitStack() as stack:
            body = data if isinstance(data, bytes) else stack.enter_context(open(data, "rb"))
            response = self.session.post(url, params=query, data=body, headers=self.headers,
                                         timeout=600)
        _raise_for_status(response)
        return response.json()

    def register_files(self, model: str, version: str, files: Mapping[str, bytes | str], *,
                       compression: int = zipfile.ZIP_DEFLATED, **kwargs: Any) -> dict:
        """Upload a zip of the given files as a version (stored ones are served by sendfile)."""
        return self.register_zip(model, version, zip_bytes(files, compression), **kwargs)

    def register_folder(self, model: str, version: str, folder: Path, **kwargs: Any) -> dict:
        """Zip a folder to a temporary file and upload it, streamed, as a version."""
        with tempfile.TemporaryDirectory() as scratch:
            archive = zip_folder(Path(folder), Path(scratch) / "model.zip")
            return self.register_zip(model, version, archive, **kwargs)

    def details(self, model: str, workspace: str | None = None) -> dict:
        """The registry-model/details answer of a model."""
        response = self.get("registry-model/details", workspaceName=workspace or self.workspace,
                            modelName=model)
        _raise_for_status(response)
        return response.json()

    def with_status(self, model: str, status: str) -> list[str]:
        """The versions of a model with a status, newest first (items?status=, as the SDK)."""
        response = self.get("registry-model/items", workspaceName=self.workspace,
                            modelName=model, status=status)
        _raise_for_status(response)
        return [item["version"] for item in response.json()["items"]]

    def status_of(self, model: str, version: str) -> str:
        """A version's status from item/details, as the SDK's Model.status reads it."""
        response = self.get("registry-model/item/details", workspaceName=self.workspace,
                            modelName=model, version=version)
        _raise_for_status(response)
        return response.json()["status"]

    def set_details_shape(self, shape: str) -> None:
        """Answer registry-model/details in the "sdk" shape (no status, no tags) or "full"."""
        self._admin("PUT", "details-shape", {"shape": shape})

    def item_id(self, model: str, version: str) -> str:
        """The registryModelItemId of a version."""
        for item in self.details(model)["versions"]:
            if item["version"] == version:
                return item["registryModelItemId"]
        raise KeyError(f"{model} {version}")

    def set_status(self, model: str, version: str, status: str) -> None:
        """Promote or demote a version, as the SDK's Model.set_status does."""
        payload = {"status": status, "modelItemId": self.item_id(model, version)}
        _raise_for_status(self.post("write/registry-model/item/status", payload))

    def add_tag(self, model: str, version: str, tag: str) -> None:
        """Add a tag to a version, as the SDK's Model.add_tag does."""
        _raise_for_status(self.get("write/registry-model/item/stage",
                                   modelItemId=self.item_id(model, version), stage=tag))

    def tags_of(self, model: str, version: str) -> list[str]:
        """A version's tags from item/details, as the SDK's Model.tags reads them."""
        response = self.get("registry-model/item/details", workspaceName=self.workspace,
                            modelName=model, version=version)
        _raise_for_status(response)
        return list(response.json().get("tags") or [])

    def download(self, model: str, **params: Any) -> bytes:
        """The zip of a version (params: version= or stage=), as bytes."""
        response = self.get("registry-model/item/download", workspaceName=self.workspace,
                            modelName=model, **params)
        _raise_for_status(response)
        return response.content

    def set_faults(self, *rules: dict) -> list[dict]:
        """Replace every fault rule (see local_registry.faults)."""
        return self._admin("PUT", "faults", list(rules))["rules"]

    def add_fault(self, **rule: Any) -> list[dict]:
        """Append one fault rule, e.g. add_fault(path="get-asset", status=503, times=2)."""
        return self._admin("POST", "faults", rule)["rules"]

    def clear_faults(self) -> None:
        """Remove every fault rule."""
        self._admin("DELETE", "faults")

    def faults(self) -> list[dict]:
        """The live fault rules, with the `times` they have left."""
        return self._admin("GET", "faults")["rules"]

    def request_counts(self) -> dict:
        """{"total", "by_path": {path: n}, "by_method_path": {"GET path": n}} since reset."""
        return self._admin("GET", "requests")

    def count(self, endpoint: str, method: str | None = None) -> int:
        """Requests received on an endpoint (path under /api/rest/v2/, or a full path)."""
        path = endpoint if endpoint.startswith("/") else f"{API}/{endpoint}"
        counts = self.request_counts()
        if method is None:
            return counts["by_path"].get(path, 0)
        return counts["by_method_path"].get(f"{method.upper()} {path}", 0)

    def downloads(self) -> int:
        """Requests that fetch a model's bytes: per asset, presigned link, or the legacy zip."""
        counts = self.request_counts()["by_path"]
        return sum(n for path, n in counts.items()
                   if path.endswith(DOWNLOAD_PATHS) or path.startswith("/presigned/"))

    def set_presigned(self, enabled: bool) -> None:
        """Serve downloads through presigned links (s3DownloadEnabled) or not."""
        self._admin("PUT", "presigned", {"enabled": enabled})

    def zip_only(self) -> None:
        """Make the registry look like one without download-instructions: the zip fallback."""
        self.add_fault(path="registry-model/item/download-instructions", status=404)

    def reset_request_counts(self) -> None:
        """Count requests from zero."""
        self._admin("DELETE", "requests")

    def _admin(self, method: str, what: str, payload: Any = None) -> Any:
        response = self.session.request(method, f"{self.url}/-/{what}", json=payload,
                                        headers=self.headers, timeout=30)
        _raise_for_status(response)
        return response.json()

    def is_alive(self) -> bool:
        """True when GET /clientlib/isAlive/ver answers 200."""
        try:
            return requests.get(f"{self.url}/clientlib/isAlive/ver", timeout=2).ok
        except requests.RequestException:
            return False

    def stop(self, timeout: float = 10.0) -> int:
        """SIGTERM the process and wait for it; returns its exit code."""
        self.session.close()
        return stop_process(self.process, timeout=timeout)

    def restart(self) -> LocalRegistry:
        """Stop, then start again on the same port and data; this handle follows the new process."""
        self.stop()
        fresh = start_local_registry(self.data_dir, api_key=self.api_key, workspace=self.workspace,
                                     workspaces=self.workspaces, port=self.port,
                                     log_path=self.log_path, details_shape=self.details_shape)
        self.process, self.url, self.session = fresh.process, fresh.url, requests.Session()
        return self

    def logs(self) -> str:
        """What the process has logged so far."""
        return self.log_path.read_text(encoding="utf-8", errors="replace")


def _raise_for_status(response: requests.Response) -> None:
    if not response.ok:
        raise requests.HTTPError(f"{response.status_code} {response.text}", response=response)


def start_local_registry(data_dir: Path, *, api_key: str = DEFAULT_API_KEY,
                         workspace: str = DEFAULT_WORKSPACE, workspaces: Iterable[str] = (),
                         port: int = 0, log_path: Path | None = None,
                         details_shape: str | None = None) -> LocalRegistry:
    """Start `local-registry` as a process; return once isAlive answers.

    details_shape: "sdk" or "full"; None takes LOCAL_REGISTRY_DETAILS_SHAPE (tests/conftest.py).
    """
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_path or data_dir.parent / f"{data_dir.name}.log"
    command = [sys.executable, "-m", "local_registry", "--data",
               str(data_dir), "--port", str(port), "--api-key", api_key,
               "--member-api-key", MEMBER_API_KEY]
    for name in workspaces:
        command += ["--workspace", name]
    if details_shape:
        command += ["--details-shape", details_shape]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH", "")) if p)}
    log_file = open(log_path, "a", encoding="utf-8")  # noqa: SIM115 - the process keeps it
    offset = log_file.tell()
    process = subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdin=subprocess.DEVNULL,
                               stdout=log_file, stderr=log_file)
    log_file.close()
    url = _wait_for_start(process, log_path, offset)
    return LocalRegistry(url=url, api_key=api_key, workspace=workspace, data_dir=data_dir,
                         log_path=log_path, process=process, workspaces=tuple(workspaces),
                         details_shape=details_shape)


def _wait_for_start(process: subprocess.Popen, log_path: Path, offset: int) -> str:
    """The URL of the `local_registry_started` line, once isAlive answers on it."""
    deadline, url = time.monotonic() + START_TIMEOUT, None
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"local registry exited {process.returncode}:\n"
                               + log_path.read_text(errors="replace")[offset:])
        if url is None:
            url = _started_url(log_path, offset)
        if url is not None:
            with contextlib.suppress(requests.RequestException):
                if requests.get(f"{url}/clientlib/isAlive/ver", timeout=1).ok:
                    return url
        time.sleep(0.05)
    process.kill()
    raise RuntimeError("local registry did not start in time:\n"
                       + log_path.read_text(errors="replace")[offset:])


def _started_url(log_path: Path, offset: int) -> str | None:
    with open(log_path, encoding="utf-8", errors="replace") as log:
        log.seek(offset)
        for line in log:
            with contextlib.suppress(ValueError):
                entry = json.loads(line)
                if entry.get("event") == "local_registry_started":
                    return entry["url"]
    return None


def sdk_env(registry: LocalRegistry, home: Path) -> dict[str, str]:
    """Environment for a process using the comet_ml SDK against the registry, never the internet.

    HOME is a scratch folder (no ~/.comet.config), auto-logging, error tracking and
    announcements are off, and any non-loopback request goes to a dead proxy.
    """
    dead_proxy = "http://127.0.0.1:9"
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home),
        "PYTHONPATH": str(REPO_ROOT), **registry.env(),
        "COMET_DISABLE_AUTO_LOGGING": "1", "COMET_ERROR_TRACKING_ENABLE": "false",
        "COMET_DISABLE_ANNOUNCEMENT": "1", "COMET_OFFLINE_DIRECTORY": str(home / "offline"),
        "HTTP_PROXY": dead_proxy, "HTTPS_PROXY": dead_proxy, "http_proxy": dead_proxy,
        "https_proxy": dead_proxy, "NO_PROXY": "127.0.0.1,localhost",
        "no_proxy": "127.0.0.1,localhost",
    }


def run_sdk_script(registry: LocalRegistry, code: str, home: Path, timeout: float = 120,
                   allow_errors: bool = True) -> Any:
    """Run Python code using comet_ml in a separate process; return the JSON of its last line.

    With allow_errors=False, any `COMET ERROR` line the SDK logs fails the script too.
    """
    home.mkdir(parents=True, exist_ok=True)
    done = subprocess.run([sys.executable, "-c", code], env=sdk_env(registry, home), cwd=home,
                          capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise AssertionError(f"SDK script failed ({done.returncode}):\n{done.stderr[-4000:]}")
    errors = [line for line in (done.stdout + done.stderr).splitlines() if "COMET ERROR" in line]
    if errors and not allow_errors:
        raise AssertionError("the SDK logged errors:\n" + "\n".join(errors[:20]))
    return json.loads(done.stdout.strip().splitlines()[-1])


@contextlib.contextmanager
def running_local_registry(data_dir: Path, **kwargs: Any) -> Iterator[LocalRegistry]:
    """A local registry process for the duration of a with-block."""
    registry = start_local_registry(data_dir, **kwargs)
    try:
        yield registry
    finally:
        registry.stop()


@pytest.fixture(scope="module")
def local_registry_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRegistry]:
    """One local registry process for the whole test module."""
    root = tmp_path_factory.mktemp("local-registry")
    with running_local_registry(root / "data") as registry:
        yield registry


@pytest.fixture
def local_registry(local_registry_server: LocalRegistry) -> Iterator[LocalRegistry]:
    """The module's local registry, with no fault rules and request counts at zero."""
    local_registry_server.clear_faults()
    local_registry_server.reset_request_counts()
    yield local_registry_server
    if local_registry_server.process.poll() is None:
        local_registry_server.clear_faults()
