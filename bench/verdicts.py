"""Whether a verdict can be trusted: its measurement happened, and the code did not change since.

A target is met only when its own test passed AND every count it rests on (answers received,
samples taken, rounds run) is above zero: a server that answered nothing cannot meet a "0 failed"
goal. A section records the commit it ran on; it is stale when a later commit touched the code
its part measures (MEASURES), found with git on every rendering.
"""

from __future__ import annotations

import subprocess
from collections.abc import Mapping
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
_HARNESS = ("bench/common.py", "bench/servers.py", "bench/models.py")
_SERVING = ("serving/", "model_contract/")
_SIDECAR = ("registry_sync/", "local_registry/", "model_contract/")
# What each part measures: a commit touching any of these paths makes its section stale.
MEASURES: dict[str, tuple[str, ...]] = {
    "throughput": (*_SERVING, "bench/textbook_app.py"),
    "batch": (*_SERVING, "bench/profiling.py", "bench/v2_pieces.py"),
    "swap": (*_SERVING, "registry_sync/store/publish.py"),
    "promotion": _SERVING + _SIDECAR,
    "download": _SIDECAR,
    "memory": _SERVING,
    "idle": _SERVING + _SIDECAR,
    "front": (*_SERVING, "bench/nginx.conf", "bench/gunicorn_conf.py"),
    "mpm": _SERVING,
    "replicas": _SIDECAR,
    "challenger": _SERVING,
    "isolation": _SERVING,
    "peers": (*_SERVING, "bench/peer_servers/"),
    "v2": (*_SERVING, "devkit/load.py", "bench/profiling.py"),
}


def trusted(met: bool, evidence: Mapping[str, float]) -> bool:
    """Met only if the goal was met and every count of the measurement is above zero."""
    return bool(met) and bool(evidence) and not missing(evidence)


def missing(evidence: Mapping[str, float]) -> list[str]:
    """The counts that show no measurement happened (zero, negative or NaN)."""
    return [name for name, count in evidence.items() if not count > 0]


def _git(*args: str) -> str:
    done = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, timeout=30,
                          check=False)
    return done.stdout.strip() if done.returncode == 0 else ""


def head_commit() -> str:
    """The commit being measured, with "-dirty" when the measured tree has uncommitted changes."""
    head = _git("rev-parse", "HEAD")
    dirty = _git("status", "--porcelain", "--untracked-files=no", "--", "serving",
                 "registry_sync", "model_contract", "local_registry", "bench",
                 ":(exclude)bench/results.*")
    return f"{head}-dirty" if head and dirty else head


def last_change(part: str) -> str:
    """The last commit that touched the code this part measures ("" if unknown)."""
    paths = MEASURES.get(part, ()) + _HARNESS + (f"bench/{part}.py",)
    return _git("log", "-1", "--format=%H", "--", *paths)


def staleness(part: str, commit: str | None) -> str:
    """Why a section no longer describes the code ("" when it still does)."""
    if not commit:
        return "it names no commit: run before sections recorded one"
    changed = last_change(part)
    if not changed:
        return ""
    measured = commit.removesuffix("-dirty")
    if not _is_ancestor(changed, measured):
        return (f"measured on {measured[:10]}, but {changed[:10]} changed the code it measures "
                "since")
    return ""


def _is_ancestor(older: str, newer: str) -> bool:
    done = subprocess.run(["git", "merge-base", "--is-ancestor", older, newer], cwd=REPO,
                          capture_output=True, timeout=30, check=False)
    return done.returncode == 0
