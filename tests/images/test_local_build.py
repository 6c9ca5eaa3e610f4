"""The parts of the local image build that need no buildah: staleness and mount paths."""

from __future__ import annotations

import os

from tests.support import buildah

local_images = buildah.local_images


def make_tree(root):
    """A minimal copy of the build context's files."""
    for name in local_images.CONTEXT:
        path = root / name
        if name in ("model_contract", "registry_sync", "serving"):
            path.mkdir(parents=True)
            (path / "__init__.py").write_text(f"# {name}\n")
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(f"{name}\n")


def test_the_context_digest_follows_what_the_build_copies(tmp_path):
    """Code or Dockerfile edits make the built images stale; bytecode caches do not."""
    make_tree(tmp_path)
    first = local_images.context_digest(tmp_path)
    (tmp_path / "serving" / "__pycache__").mkdir()
    (tmp_path / "serving" / "__pycache__" / "x.cpython-311.pyc").write_bytes(b"\0")
    assert local_images.context_digest(tmp_path) == first
    (tmp_path / "serving" / "__init__.py").write_text("# changed\n")
    second = local_images.context_digest(tmp_path)
    assert second != first
    (tmp_path / "docker" / "Dockerfile.sidecar").write_text("FROM scratch\n")
    assert local_images.context_digest(tmp_path) != second


def test_mount_paths_resolve_through_the_images_symlinks(tmp_path):
    """/var/run -> /run in the image: the mount goes to /run, never through the host's /run."""
    (tmp_path / "run").mkdir()
    (tmp_path / "var").mkdir()
    os.symlink("/run", tmp_path / "var" / "run")
    os.symlink("../run/lock", tmp_path / "var" / "lock")
    container = buildah.Container("unused", tmp_path)
    assert container.resolve("/var/run/secrets/comet") == "/run/secrets/comet"
    assert container.resolve("/var/lock/x") == "/run/lock/x"
    assert container.resolve("/models") == "/models"
