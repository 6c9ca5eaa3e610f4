"""serving.containment in a real child process: what a validation may not do, and the secrets
wiped from /proc/<pid>/environ (issue 23)."""

from __future__ import annotations

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
