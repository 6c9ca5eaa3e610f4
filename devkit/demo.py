"""The one-command demo: the whole system on a local registry, on 127.0.0.1.

`make demo` (python -m devkit.demo) trains the diamonds classifier, starts the local
registry with version 1.0.0 in Production, the sidecar and serving (granian) as real
processes, and prints the URL of the form, a curl line for the JSON API and the commands that
register and promote the next free version. State lives under one folder (default .demo/,
`--reset` starts afresh). Ctrl-C (or SIGTERM) stops everything cleanly.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import secrets
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests

from devkit.demo_ports import ports_in_use
from devkit.demo_price import PRICE_MODEL, described_price_model, price_envs
from registry_sync.config import CometSettings
from registry_sync.errors import ModelNotFound
from registry_sync.registries.comet.client import CometClient
from registry_sync.registries.values import semver_key
from serving.front.command import serving_argv

MODEL = "diamonds-classifier"
WORKSPACE = "demo"
SERVING_COMMAND = serving_argv()


class DemoError(Exception):
    """The demo could not start; the message says why."""


def _ask(url: str, timeout: float = 2.0) -> int:
    try:
        return requests.get(url, timeout=timeout).status_code
    except requests.RequestException:
        return 0


def next_free_version(versions: list[str]) -> str:
    """The next minor version after the highest registered one (1.0.0 -> 1.1.0)."""
    highest = max(map(semver_key, versions), default=None)
    major, minor = highest.major_minor if highest else (1, 0)
    return f"{major}.{minor + 1}.0"


def _wait_ready(url: str, processes: dict[str, subprocess.Popen], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while _ask(url) != 200:
        for name, process in processes.items():
            if process.poll() is not None:
                raise DemoError(f"{name} exited with code {process.returncode}; see its log")
        if time.monotonic() > deadline:
            raise DemoError(f"{url} not ready after {timeout:.0f}s")
        time.sleep(0.2)


def shell_commands() -> tuple[str, str]:
    """This Python and its registry-sync, as a shell in the current folder reaches them."""
    python = Path(sys.executable)
    try:
        shown = python.relative_to(Path.cwd())
    except ValueError:
        shown = python
    script = python.with_name("registry-sync")
    sync = (shlex.quote(str(shown.with_name(script.name))) if script.exists()
            else f"{shlex.quote(str(shown))} -m registry_sync")
    return shlex.quote(str(shown)), sync


def key_naming(url: str) -> str:
    """The demo's API key, carrying its server as `<key>*<base64 {"baseUrl"}>` Comet keys may."""
    suffix = base64.b64encode(json.dumps({"baseUrl": url + "/"}).encode()).decode()
    return "demo-api-key*" + suffix.rstrip("=")


class Demo:
    """Starts and stops the demo's processes."""

    def __init__(self, args: argparse.Namespace):
        self.home: Path = args.home.absolute()
        self.args = args
        self.processes: dict[str, subprocess.Popen] = {}
        self.registry_url = f"http://127.0.0.1:{args.registry_port}"
        self.app_url = f"http://127.0.0.1:{args.port}"
        self.api_key = key_naming(self.registry_url)
        inherited = {k: v for k, v in os.environ.items()
                     if k not in ("COMET_URL_OVERRIDE", "PROMETHEUS_MULTIPROC_DIR")}
        # No COMET_URL_OVERRIDE at all (not even empty, which comet_mpm refuses): the key names
        # its server, as a Comet key may.
        self.env = {
            **inherited,
            "COMET_API_KEY": self.api_key, "COMET_WORKSPACE": WORKSPACE,
            "MODEL_ROOT": str(self.home / "models"), "REGISTRY_MODELS": MODEL,
            "SYNC_INTERVAL": str(args.interval), "RELOAD_TOKEN": "demo-reload-token",
            "SERVING_URL": f"http://127.0.0.1:{args.admin_port}",
            "SIDECAR_LISTEN": f"127.0.0.1:{args.sidecar_port}",
        }
        # serving's alone: the sidecar is one process (its metrics in multiprocess mode warn)
        self.serving_env = {
            **self.env,
            "BIND": f"127.0.0.1:{args.port}", "ADMIN_PORT": str(args.admin_port),
            "WEB_CONCURRENCY": "2", "PROMETHEUS_MULTIPROC_DIR": str(self.home / "metrics"),
            "MPM_ENABLED": "true", "MPM_BATCH_SECONDS": "1",  # events to the local registry
            "VERDICT_ENABLED": "true", "VERDICT_INTERVAL": "5",  # the challenger's figures too
        }
        self.login_token = secrets.token_urlsafe(16)
        self.price_url = f"http://127.0.0.1:{args.price_port}" if args.price else None

    def _start(self, name: str, command: list[str], env: dict[str, str] | None = None) -> None:
        log = open(self.home / f"{name}.log", "ab")  # noqa: SIM115 - the child keeps it open
        self.processes[name] = subprocess.Popen(command, env=env or self.env, stdout=log,
                                                stderr=log, stdin=subprocess.DEVNULL)
        log.close()

    def _run(self, *command: str) -> str:
        done = subprocess.run(command, env=self.env, capture_output=True, text=True)
        if done.returncode != 0:
            raise DemoError(f"{shlex.join(command)} failed:\n{done.stderr.strip()[-2000:]}")
        return done.stdout

    def write_env_file(self) -> None:
        """Write .demo/env so the banner's promote commands reach the same registry."""
        keys = ("COMET_API_KEY", "COMET_WORKSPACE", "MODEL_ROOT")
        # empty, so that sourcing it clears an override of the shell pointing elsewhere
        lines = ["COMET_URL_OVERRIDE=\n", *(f"{k}={self.env[k]}\n" for k in keys)]
        (self.home / "env").write_text("".join(lines))
        token = self.home / "login-token"
        token.touch(mode=0o600)
        token.write_text(self.login_token)

    def start(self) -> None:
        """Train, start the registry, register 1.0.0 in Production, start sidecar and serving."""
        if self.args.reset and self.home.exists():
            shutil.rmtree(self.home)
        (self.home / "metrics").mkdir(parents=True, exist_ok=True)
        self.write_env_file()
        self._start("registry", [sys.executable, "-m", "local_registry",
                                 "--data", str(self.home / "registry"), "--port",
                                 str(self.args.registry_port), "--api-key", self.api_key,
                                 "--login-token-file", str(self.home / "login-token")])
        _wait_ready(f"{self.registry_url}/clientlib/isAlive/ver", self.processes, 30)
        first = self.home / "work" / "model-1.0.0"
        if "1.0.0" not in self.registered_versions():
            print("training the diamonds classifier (1.0.0)...", flush=True)
            print(self._run(sys.executable, "-m", "serving.train", str(first), "--seed", "1"))
            print(self._run(sys.executable, "-m", "registry_sync.cli", "register", "--model",
                            MODEL, "--version", "1.0.0", "--status", "Production", str(first)))
        for folder in ("models", "metrics"):
            (self.home / folder).mkdir(exist_ok=True)
        for stale in (self.home / "metrics").glob("*.db"):
            stale.unlink()
        self._start("serving", SERVING_COMMAND, self.serving_env)
        self._start("registry-sync", [sys.executable, "-m", "registry_sync.cli", "run"])
        _wait_ready(f"{self.app_url}/readyz", self.processes, self.args.timeout)
        if self.price_url is not None:
            self.start_price()

    def start_price(self) -> None:
        """The second model kind: the price regressor, registered once, in a pod of its own."""
        if "1.0.0" not in self.registered_versions(PRICE_MODEL):
            print("training and describing the diamond price regressor (1.0.0)...", flush=True)
            folder = described_price_model(self.home / "work")
            print(self._run(sys.executable, "-m", "registry_sync.cli", "register", "--model",
                            PRICE_MODEL, "--version", "1.0.0", "--status", "Production",
                            str(folder)))
        sidecar_env, serving_env = price_envs(self.args, self.home, self.env, self.serving_env)
        for folder in ("price-models", "price-metrics"):
            (self.home / folder).mkdir(exist_ok=True)
        for stale in (self.home / "price-metrics").glob("*.db"):
            stale.unlink()
        self._start("serving-price", SERVING_COMMAND, serving_env)
        self._start("registry-sync-price", [sys.executable, "-m", "registry_sync.cli", "run"],
                    sidecar_env)
        _wait_ready(f"{self.price_url}/readyz", self.processes, self.args.timeout)

    def registered_versions(self, model: str = MODEL) -> list[str]:
        """The versions of one of the demo's models in the local registry."""
        client = CometClient(CometSettings(self.registry_url, WORKSPACE, self.api_key, None))
        try:
            return [v.version for v in client.get_model(model).versions]
        except ModelNotFound:
            return []

    def banner(self) -> str:
        """What to do next, with the next version the registry does not hold yet."""
        home = shlex.quote(str(self.home))
        new = next_free_version(self.registered_versions())
        python, sync = shell_commands()
        return f"""
The demo is up (state in {home}, logs in {home}/*.log):

  form:     {self.app_url}/
  JSON API: curl -s -X POST {self.app_url}/api/v1/predict -H 'Content-Type: application/json' \\
              -d '{{"carat": 0.7, "color": "E", "clarity": "VS2", "depth": 61.5, "table": 56,
                   "price": 2800, "x": 5.7, "y": 5.72, "z": 3.52}}' -i
  status:   {sync} status --model-root {home}/models
  registry: {self.registry_url}/ui/login/{self.login_token}
            (a one-time login link; later, log in with the COMET_API_KEY of {home}/env)
  MPM:      {self.registry_url}/mpm/local/counts  (Comet MPM events per version, as you predict)
{self._price_lines()}
Promote a new version and watch X-Model-Version switch, without a restart: paste these lines into
bash, in this folder (or, after the register line, set its status on the registry page):

  {python} -m serving.train {home}/work/model-{new} --seed {int(new.split(".")[1]) + 1}
  set -a; . {home}/env; set +a
  {sync} register --model {MODEL} --version {new} {home}/work/model-{new}
  # first in shadow: the form's page shows how often it agrees with the champion
  {sync} promote {MODEL} {new} --status Staging
  # then the champion; the one before leaves Production
  {sync} promote {MODEL} {new} --demote-to None

Ctrl-C stops everything (from another shell: kill -TERM {os.getpid()}); --reset starts afresh.
"""

    def _price_lines(self) -> str:
        """The banner's lines for the price regressor, when it runs."""
        if self.price_url is None:
            return "  (--price also serves a second model kind: a regressor of diamond prices)\n"
        return (f"  price:    {self.price_url}/  (model {PRICE_MODEL}, a regressor: its form, "
                f"/api/v1/predict, /v2/models/{PRICE_MODEL}/infer)\n")

    def stop(self) -> None:
        """Stop every process: SIGTERM, then SIGKILL after a grace period."""
        # A second Ctrl-C must not cut this short: the SIGKILL fallback would never come.
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, signal.SIG_IGN)
        # One at a time, the last started first: the sidecar ends its pass while the registry
        # still answers (else a shutdown shows as a retried ConnectionError in its log).
        deadline = time.monotonic() + 15
        for process in reversed(list(self.processes.values())):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The demo's options: where state lives and which loopback ports to use."""
    parser = argparse.ArgumentParser(prog="python -m devkit.demo", description=__doc__,
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--home", type=Path, default=Path(".demo"), help="state folder")
    parser.add_argument("--reset", action="store_true", help="delete the state folder first")
    parser.add_argument("--port", type=int, default=8000, help="the app's public port")
    parser.add_argument("--admin-port", type=int, default=8001, help="the app's admin port")
    parser.add_argument("--registry-port", type=int, default=5050, help="local registry port")
    parser.add_argument("--sidecar-port", type=int, default=8090, help="sidecar's status port")
    parser.add_argument("--interval", type=float, default=2.0, help="seconds between polls")
    parser.add_argument("--price", action="store_true",
                        help="also serve a second model kind: a regressor of diamond prices")
    parser.add_argument("--price-port", type=int, default=8010, help="its public port")
    parser.add_argument("--price-admin-port", type=int, default=8011, help="its admin port")
    parser.add_argument("--price-sidecar-port", type=int, default=8091,
                        help="its sidecar's status port")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for ready")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the demo until Ctrl-C or SIGTERM."""
    args = parse_args(argv)
    busy = ports_in_use({"--port": args.port, "--admin-port": args.admin_port,
                         "--registry-port": args.registry_port,
                         "--sidecar-port": args.sidecar_port,
                         **({"--price-port": args.price_port,
                             "--price-admin-port": args.price_admin_port,
                             "--price-sidecar-port": args.price_sidecar_port}
                            if args.price else {})},
                        under_make="MAKELEVEL" in os.environ)
    if busy:
        print(f"demo: {busy[0]}", file=sys.stderr)
        return 1
    demo = Demo(args)
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    # Ctrl-C stops the demo even when started from a script that ignores SIGINT (a shell's
    # background job does; Python then keeps it ignored).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        demo.start()
        print(demo.banner(), flush=True)
        while all(p.poll() is None for p in demo.processes.values()):
            time.sleep(0.5)
        gone = [n for n, p in demo.processes.items() if p.poll() is not None]
        print(f"demo: {', '.join(gone)} exited; see {demo.home}/*.log", file=sys.stderr)
        return 1
    except DemoError as exc:
        print(f"demo: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nstopping...", flush=True)
        return 0
    finally:
        demo.stop()


if __name__ == "__main__":
    sys.exit(main())
