"""Models whose loading tries to escape the validation: signals, forks, files, threads (issue 23).

Each pickle runs its script when the validator loads it, then refuses the load saying what it
managed, so a test reads every attempt's outcome from the verdict's reason.
"""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

from devkit.models import LoadsAs

# Run while unpickled by the validator: what a hostile author tries from there — stop or kill
# serving's processes (SIGNAL to each of PIDS; kill(-1) with signal 0 only, as root it reaches
# every process of the machine), serve the public port, fork 50 children holding 64 MiB each
# (a server that outlives the verdict), write a 2 GiB file, hold 1 GiB in a memfd — then refuse
# the load with every call's errno (0: it worked) in the reason.
ESCAPES = """
import json, os, signal, socket, time
SECRETS = ("TOKEN", "KEY", "SECRET")
proc = open("/proc/self/environ", "rb").read().decode("latin-1").split("\\0")
seen = {"env": [n for n in os.environ if any(w in n for w in SECRETS)],
        "proc": [e.split("=")[0] for e in proc if any(w in e.split("=")[0] for w in SECRETS)]}
def attempt(name, call):
    try:
        call()
        seen[name] = 0
    except OSError as exc:
        seen[name] = exc.errno
def serve():
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    server.bind(("127.0.0.1", PORT))
    server.listen(64)
def fork():
    for _ in range(50):
        if os.fork() == 0:
            os.setsid()
            hold = bytearray(64 * 1024 * 1024)
            time.sleep(30)
            os._exit(0)
def write():
    with open(BIG, "wb") as big:
        for _ in range(2048):
            big.write(bytes(1024 * 1024))
def memfd():
    os.ftruncate(os.memfd_create("hold"), 1024 ** 3)
attempt("kill everyone", lambda: os.kill(-1, 0))
for pid in PIDS:
    attempt(f"kill {pid}", lambda: os.kill(pid, SIGNAL))
attempt("bind", serve)
attempt("fork", fork)
attempt("write", write)
attempt("memfd", memfd)
raise ValueError("refused after trying " + json.dumps(seen))
"""


def escaping(source: Path, target: Path, port: int, pids: list[int], signal: int,
             big: Path) -> Path:
    """A classifier folder whose pickle runs ESCAPES (aimed at port, pids and the file big) when
    loaded."""
    shutil.copytree(source, target)
    (target / "pipeline.skops").unlink(missing_ok=True)
    script = f"PORT = {port}\nPIDS = {pids!r}\nSIGNAL = {signal}\nBIG = {str(big)!r}\n" + ESCAPES
    (target / "pipeline.pkl").write_bytes(pickle.dumps(LoadsAs(f"exec({script!r}, {{}})")))
    return target


def attempts(reason: str) -> dict:
    """What ESCAPES reported in the refusal's reason."""
    return json.loads(reason.partition("refused after trying ")[2])


# Run while unpickled by the validator: start up to 2,000 threads of 64 KiB stacks, all alive at
# once, then refuse the load saying how many started.
THREADS = """
import threading
threading.stack_size(64 * 1024)
done, started = threading.Event(), 0
try:
    for _ in range(2000):
        threading.Thread(target=done.wait, daemon=True).start()
        started += 1
except RuntimeError:
    pass
done.set()
raise ValueError(f"started {started} threads")
"""


def threading_model(source: Path, target: Path) -> Path:
    """A classifier folder whose pickle runs THREADS when loaded."""
    shutil.copytree(source, target)
    (target / "pipeline.skops").unlink(missing_ok=True)
    (target / "pipeline.pkl").write_bytes(pickle.dumps(LoadsAs(f"exec({THREADS!r}, {{}})")))
    return target
