"""Containers of the images `make images` built, run with buildah as the pod would run them.

`buildah run --isolation chroot` needs no daemon and shares the host's network, so a container's
ports are the host's loopback ports. `Container` is one working container of an image: `run`
starts a process in it with the image's own config (user, env) plus the given env and bind
mounts; `files()` lists its root filesystem (what the process changed outside the mounts shows
up there). Mount destinations are resolved through the image's own symlinks (/var/run -> /run):
buildah 1.28 follows an absolute symlink of the image on the host instead.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import psutil

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT / "docker"))
import local_images  # noqa: E402  (docker/local_images.py, the builder)

sys.path.pop(0)


def built_images() -> tuple[dict[str, dict] | None, str]:
    """{kind: record} of the images `make images` built from this tree, or None and why not."""
    if os.geteuid() != 0:
        return None, "the built images run with buildah as root; this is not root"
    if not local_images.BUILT.exists():
        return None, "the images are not built: run `make images` (buildah, debootstrap)"
    built = json.loads(local_images.BUILT.read_text())
    if built["context"] != local_images.context_digest():
        return None, "the built images are stale (the tree changed since): run `make images`"
    for record in built["images"].values():
        if local_images.image_info(record["name"]) is None:
            return None, f"{record['name']} is no longer in buildah's storage: run `make images`"
    return built["images"], ""


def image_config(name: str) -> dict:
    """The image's Docker-format config: Entrypoint, Cmd, Env, User, Healthcheck."""
    done = subprocess.run(["buildah", "inspect", "--type", "image", name], capture_output=True,
                          text=True, check=True)
    return json.loads(done.stdout)["Docker"]["config"]


@dataclass
class Container:
    """A buildah working container of an image, with its root filesystem mounted."""

    name: str
    rootfs: Path

    @classmethod
    def create(cls, image: str) -> Container:
        """A new working container of the image (remove() deletes it)."""
        name = f"crs-test-{uuid.uuid4().hex[:10]}"
        subprocess.run(["buildah", "from", "--quiet", "--name", name, image], check=True,
                       capture_output=True)
        mounted = subprocess.run(["buildah", "mount", name], check=True, capture_output=True,
                                 text=True).stdout.strip()
        return cls(name, Path(mounted))

    def resolve(self, path: str) -> str:
        """The path inside the container, through the image's symlinks (absolute or relative)."""
        resolved = PurePosixPath("/")
        for part in PurePosixPath(path).parts[1:]:
            candidate = resolved / part
            local = self.rootfs / str(candidate).lstrip("/")
            if local.is_symlink():
                target = PurePosixPath(os.readlink(local))
                candidate = target if target.is_absolute() else resolved / target
                candidate = PurePosixPath(os.path.normpath(candidate))
            resolved = candidate
        return str(resolved)

    def argv(self, command: list[str], env: dict[str, str],
             mounts: dict[str, tuple[Path, bool]]) -> list[str]:
        """`buildah run` of command with env and mounts {path: (host dir, read-only)}."""
        argv = ["buildah", "run", "--isolation", "chroot", "--network", "host"]
        for key, value in env.items():
            argv += ["--env", f"{key}={value}"]
        for path in sorted(mounts, key=lambda p: p.count("/")):  # parents before children
            source, read_only = mounts[path]
            argv += ["--volume", f"{source}:{self.resolve(path)}:{'ro' if read_only else 'rw'}"]
        return [*argv, self.name, "--", *command]

    def files(self, skip: list[str]) -> dict[str, tuple]:
        """{path: (mode, uid, gid, size, mtime)} of the root filesystem, minus the skipped trees.

        A folder's mtime is left out: every `buildah run` re-creates its own mount points in
        /run (/run/.containerenv). A file created, changed or deleted still shows.
        """
        skipped = tuple(self.resolve(path).rstrip("/") + "/" for path in skip)
        found = {}
        for folder, dirs, names in os.walk(self.rootfs):
            for entry in (*dirs, *names):
                local = Path(folder) / entry
                inside = "/" + str(local.relative_to(self.rootfs))
                if (inside + "/").startswith(skipped):
                    continue
                stat = local.lstat()
                mtime = None if local.is_dir() and not local.is_symlink() else stat.st_mtime_ns
                found[inside] = (stat.st_mode, stat.st_uid, stat.st_gid, stat.st_size, mtime)
        return found

    def remove(self) -> None:
        """Unmount and delete the working container."""
        subprocess.run(["buildah", "rm", self.name], capture_output=True, check=False)


def contained(runner: subprocess.Popen) -> list[psutil.Process]:
    """The command's processes inside the container: rooted there, not buildah's own helper.

    Under `buildah run` runs buildah-chroot-runtime (on the host's root), then
    buildah-chroot-exec (in the container), whose child is the command itself: the process a
    runtime signals, the container's PID 1 in a pod.
    """
    found = []
    with contextlib.suppress(psutil.NoSuchProcess):
        for child in psutil.Process(runner.pid).children(recursive=True):
            with contextlib.suppress(psutil.NoSuchProcess, PermissionError, FileNotFoundError):
                helper = child.cmdline()[:1] == ["buildah-chroot-exec"]
                if os.readlink(f"/proc/{child.pid}/root") != "/" and not helper:
                    found.append(child)
    return found


def stop(runner: subprocess.Popen, timeout: float = 30) -> int:
    """SIGTERM the container's first process, as the kubelet does; the command's exit code."""
    inside = contained(runner)
    pids = {process.pid for process in inside}
    for process in inside:
        with contextlib.suppress(psutil.NoSuchProcess):
            if process.ppid() not in pids:
                process.send_signal(signal.SIGTERM)
    try:
        return runner.wait(timeout)
    except subprocess.TimeoutExpired:
        for process in [*contained(runner), psutil.Process(runner.pid)]:
            with contextlib.suppress(psutil.NoSuchProcess):
                process.kill()
        runner.wait(10)
        raise
