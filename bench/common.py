"""What every benchmark part shares: processes on loopback, wrk, RSS and CPU sampling, medians.

Every process a part starts goes through `Processes`, a context manager that stops them all
(SIGTERM, then SIGKILL) however the part ends. Servers bind 127.0.0.1 on free ports only.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import requests

from devkit.processes import wait_until as poll_until
from serving.front.command import WORKER_PROCESS_NAME

REPO_ROOT = Path(__file__).resolve().parents[1]
TOKEN = "bench-reload-token-0123456789"
VALID = {"carat": 0.31, "color": "E", "clarity": "SI1", "depth": 61.5, "table": 55.0,
         "price": 420, "x": 4.3, "y": 4.32, "z": 2.65}
START_TIMEOUT = 60.0


def median(values: list[float]) -> float:
    """The median, or NaN for no values."""
    return statistics.median(values) if values else float("nan")


def env(**extra: str) -> dict[str, str]:
    """This process's environment, the repo on PYTHONPATH, the given variables."""
    merged = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    merged.update(extra)
    return merged


def wait_until(condition: Callable[[], Any], timeout: float, what: str,
               process: subprocess.Popen | None = None) -> Any:
    """Poll condition() until truthy; RuntimeError on timeout or if the process exits."""
    def check() -> Any:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{what}: the process exited with {process.returncode}")
        return condition()

    try:
        return poll_until(check, timeout, what=what)
    except AssertionError as exc:  # a benchmark stops with an error, not a failed assertion
        raise RuntimeError(str(exc)) from None


def answers(url: str, status: int = 200) -> bool:
    """True when GET url answers this status."""
    return requests.get(url, timeout=5).status_code == status


@dataclass
class Process:
    """A started process, its log, and the URL it serves (if any)."""

    name: str
    popen: subprocess.Popen
    log: Path
    url: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def pid(self) -> int:
        """The process id."""
        return self.popen.pid

    def family(self) -> list[psutil.Process]:
        """The process and its children (gunicorn workers, flask's reloader-less server)."""
        try:
            root = psutil.Process(self.pid)
            return [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def workers(self) -> list[psutil.Process]:
        """Serving's workers: the front's (named so), or gunicorn's (children of its master)."""
        found = []
        for proc in self.family():
            with contextlib.suppress(psutil.Error):
                if proc.name() == WORKER_PROCESS_NAME or (
                        "gunicorn" in " ".join(proc.parent().cmdline())
                        and "gunicorn" in " ".join(proc.cmdline())):
                    found.append(proc)
        return found

    def tail(self, lines: int = 20) -> str:
        """The end of its log."""
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM, then SIGKILL after the timeout."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(5)


class Processes(contextlib.AbstractContextManager):
    """Starts processes and stops every one of them on exit, newest first."""

    def __init__(self, work: Path):
        self.work = work
        self.started: list[Process] = []

    def start(self, name: str, argv: list[str], environ: dict[str, str],
              cwd: Path = REPO_ROOT) -> Process:
        """Start argv with its output in WORK/<name>.log."""
        log = self.work / f"{name}.log"
        with open(log, "ab") as handle:
            popen = subprocess.Popen(argv, cwd=cwd, env=environ, stdin=subprocess.DEVNULL,
                                     stdout=handle, stderr=subprocess.STDOUT)
        process = Process(name, popen, log)
        self.started.append(process)
        return process

    def stop(self, process: Process) -> None:
        """Stop one process now."""
        process.stop()
        if process in self.started:
            self.started.remove(process)

    def __exit__(self, *exc_info: object) -> None:
        for process in reversed(self.started):
            process.stop()
        self.started.clear()


@contextlib.contextmanager
def workspace(name: str) -> Iterator[Path]:
    """A scratch folder for one part, removed afterwards (BENCH_KEEP=1 keeps it)."""
    folder = Path(tempfile.mkdtemp(prefix=f"bench-{name}-"))
    try:
        yield folder
    finally:
        if os.environ.get("BENCH_KEEP") != "1":
            shutil.rmtree(folder, ignore_errors=True)


# --- wrk ---------------------------------------------------------------------------------

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


def _ms(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()
    return float(number) * _UNITS[unit]


def parse_wrk(output: str) -> dict[str, float]:
    """Requests/s, p50/p99/max latency (ms), requests, and failed requests from `wrk --latency`."""
    result = {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1)),
              "requests": int(re.search(r"(\d+) requests in", output).group(1))}
    worst = re.search(r"^\s+Latency\s+\S+\s+\S+\s+(\S+)", output, re.M)
    result["max_ms"] = _ms(worst.group(1)) if worst else float("nan")
    for pct in ("50", "99"):
        match = re.search(rf"^\s+{pct}(?:\.000)?%\s+(\S+)", output, re.M)
        result[f"p{pct}_ms"] = _ms(match.group(1)) if match else float("nan")
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)",
                       output)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    result["socket_errors"] = sum(map(int, errors.groups())) if errors else 0
    result["non_2xx"] = int(non2xx.group(1)) if non2xx else 0
    return result


def wrk(url: str, seconds: float, connections: int, body: str | None = None,
        work: Path | None = None, lua: str = "") -> dict[str, float]:
    """One bounded wrk run (1 thread, fixed connections); POSTs JSON when body is given.

    `lua` is appended to the script (e.g. a `request` function setting a header per request).
    """
    argv = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "--timeout", "5s"]
    if body is not None:
        script = Path(work or tempfile.gettempdir()) / f"post-{abs(hash(body + lua))}.lua"
        escaped = body.replace("\\", "\\\\").replace("'", "\\'")
        script.write_text('wrk.method = "POST"\n'
                          'wrk.headers["Content-Type"] = "application/json"\n'
                          f"wrk.body = '{escaped}'\n" + lua)
        argv += ["-s", str(script)]
    done = subprocess.run([*argv, url], capture_output=True, text=True,
                          timeout=seconds + 30, check=True)
    return parse_wrk(done.stdout)


def answered(runs) -> int:
    """The 2xx answers of some wrk runs: what a verdict on them rests on."""
    return sum(int(run["requests"] - run["non_2xx"]) for run in runs)


def wrk_version() -> str:
    """The first line wrk prints about itself."""
    try:
        done = subprocess.run(["wrk", "-v"], capture_output=True, text=True, timeout=10)
    except OSError:
        return "missing"
    return (done.stdout or done.stderr).splitlines()[0].strip()


# --- sampling ----------------------------------------------------------------------------

class RssSampler:
    """Samples the resident memory of a process (and its children) in a background thread."""

    def __init__(self, pid: int, interval: float = 0.01):
        self.pid, self.interval = pid, interval
        self.peak = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.hooks: list[Callable[[float], None]] = []

    def _run(self) -> None:
        while not self._stop.is_set():
            now = time.perf_counter()
            with contextlib.suppress(psutil.Error):
                root = psutil.Process(self.pid)
                rss = sum(p.memory_info().rss for p in [root, *root.children(recursive=True)])
                self.peak = max(self.peak, rss)
                self.samples += 1
            for hook in self.hooks:
                hook(now)
            self._stop.wait(self.interval)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()


def cpu_seconds(processes: list[psutil.Process]) -> float:
    """User + system CPU seconds used so far by these processes."""
    total = 0.0
    for process in processes:
        with contextlib.suppress(psutil.Error):
            times = process.cpu_times()
            total += times.user + times.system
    return total


def mib(size: float) -> float:
    """Bytes in MiB, rounded to 0.1."""
    return round(size / 2**20, 1)


def python() -> str:
    """This interpreter (the venv's)."""
    return sys.executable
