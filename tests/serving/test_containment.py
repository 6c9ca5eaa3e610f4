"""serving.containment in a real child process: what a validation may not do, and the secrets
wiped from /proc/<pid>/environ (issue 23)."""

from __future__ import annotations

import errno
import json
import subprocess
import sys

from devkit.processes import REPO_ROOT

PROBE = """
import ctypes, json, os, socket, subprocess
from serving import containment
wiped = containment.scrub_environ()
seen = {"wiped": wiped, "kept": os.environ.get("COMET_API_KEY"),
        "proc": "COMET_API_KEY" in open("/proc/self/environ", "rb").read().decode("latin-1"),
        "filter": containment.deny_listening()}
try:
    socket.socket().bind(("127.0.0.1", 0))
    seen["bind"] = 0
except OSError as exc:
    seen["bind"] = exc.errno
libc = ctypes.CDLL(None, use_errno=True)
seen["ptrace"] = libc.ptrace(0, 0, 0, 0) == -1 and ctypes.get_errno()  # PTRACE_TRACEME
seen["exec"] = subprocess.run(["true"]).returncode
print(json.dumps(seen))
"""


def test_a_contained_process_cannot_listen_nor_trace_and_its_environ_is_wiped():
    """bind and ptrace fail with EPERM, exec still works; the key is gone from /proc but kept
    in os.environ (for workers forked from the master)."""
    done = subprocess.run([sys.executable, "-c", PROBE], cwd=REPO_ROOT, capture_output=True,
                          text=True, timeout=60,
                          env={"COMET_API_KEY": "containment-test-key", "PATH": "/usr/bin:/bin",
                               "PYTHONPATH": str(REPO_ROOT)})
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    assert seen == {"wiped": 1, "kept": "containment-test-key", "proc": False, "filter": True,
                    "bind": 1, "ptrace": 1, "exec": 0}


CONFINED = """
import errno, fcntl, json, os, signal, subprocess, sys, threading
from serving import containment
inherited = open(sys.argv[1], "wb")  # held from before, as the validator holds its verdict's
seen = {"filter": containment.confine_validation()}

def attempt(name, call):
    try:
        call()
        seen[name] = 0
    except OSError as exc:
        seen[name] = exc.errno

parent = os.getppid()
attempt("kill self", lambda: os.kill(os.getpid(), 0))
attempt("signal self", lambda: signal.pthread_kill(threading.get_ident(), 0))
attempt("kill parent", lambda: os.kill(parent, 0))
attempt("kill everyone", lambda: os.kill(-1, 0))
attempt("kill own group", lambda: os.kill(0, 0))
attempt("kill parent's group", lambda: os.killpg(os.getpgid(parent), 0))
attempt("pidfd signal", lambda: signal.pidfd_send_signal(os.pidfd_open(parent), 0))
attempt("sigio owner", lambda: fcntl.fcntl(inherited.fileno(), fcntl.F_SETOWN, parent))
attempt("fork", lambda: os.fork() or None)
attempt("spawn", lambda: subprocess.run(["true"]))
attempt("write a new file", lambda: open(sys.argv[1] + ".new", "wb"))
attempt("append", lambda: open(sys.argv[1], "ab"))
attempt("memfd", lambda: os.memfd_create("x"))
attempt("rename", lambda: os.rename(sys.argv[1], sys.argv[1] + ".moved"))
attempt("unlink", lambda: os.unlink(sys.argv[1]))
attempt("chmod", lambda: os.chmod(sys.argv[1], 0o777))
attempt("mkdir", lambda: os.mkdir(sys.argv[1] + ".d"))
attempt("symlink", lambda: os.symlink(sys.argv[1], sys.argv[1] + ".link"))
attempt("read", lambda: open("/proc/self/status", "rb").read())
attempt("grow a held file", lambda: inherited.write(b"x" * (4 * 1024 * 1024)) and inherited.flush())
box = []
worker = threading.Thread(target=lambda: box.append(sum(range(1000))))
worker.start()
worker.join()
seen["thread"] = box
print(json.dumps(seen))
"""


def test_a_confined_validation_signals_nothing_but_itself_starts_nothing_and_writes_nothing(
        tmp_path):
    """After confine_validation: a signal to another process (its parent, everyone, a group,
    through a pidfd or an SIGIO owner) fails with EPERM, as do fork, exec'ing a program, opening
    a file for writing, memfd, renaming, removing, re-moding or making a file; reading,
    signalling itself and threads still work; a file it held open stops growing at 1 MiB
    (EFBIG)."""
    held = tmp_path / "verdict.tmp"
    done = subprocess.run([sys.executable, "-c", CONFINED, str(held)], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO_ROOT)})
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    refused = ("kill parent", "kill everyone", "kill own group", "kill parent's group",
               "pidfd signal", "sigio owner", "fork", "spawn", "write a new file", "append",
               "memfd", "rename", "unlink", "chmod", "mkdir", "symlink")
    assert seen == {"filter": True, "kill self": 0, "signal self": 0, "read": 0,
                    "grow a held file": errno.EFBIG, "thread": [499500],
                    **{name: errno.EPERM for name in refused}}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["verdict.tmp"]
    assert held.stat().st_size <= 1024 * 1024
    assert held.stat().st_mode & 0o777 != 0o777
