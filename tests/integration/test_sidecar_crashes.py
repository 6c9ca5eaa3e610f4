"""SIGKILL at any instant leaves `current` complete; a restart resumes without re-downloading."""

import os
import signal
import socket
import threading

from devkit.processes import (
    published,
    published_versions,
    running_sidecar,
    start_sidecar,
    wait_until,
)
from devkit.registry import unique_name
from model_contract import layout, manifest


def assert_current_complete(root, versions):
    found = published(root)
    assert found is not None and found.versions == versions
    manifest.verify(layout.snapshot_path(root, found.snapshotId), found)


def first_version(registry, tmp_path, payload=b"v1"):
    name = unique_name("clf")
    registry.register_files(name, "1.0.0", {"weights.bin": payload}, status="Production")
    root = tmp_path / "models"
    with running_sidecar(registry, root, name) as sidecar:
        sidecar.wait_for_versions({name: "1.0.0"})
    return name, root


def restart_and_expect(registry, root, name, version):
    with running_sidecar(registry, root, name) as sidecar:
        sidecar.wait_for_versions({name: version}, timeout=30)
        assert not list((root / ".staging").glob("*/*"))
    assert_current_complete(root, {name: version})


def test_sigkill_during_download(local_registry, tmp_path):
    name, root = first_version(local_registry, tmp_path)
    local_registry.register_files(name, "1.1.0", {"weights.bin": os.urandom(2_000_000)},
                                  status="Production")
    local_registry.add_fault(path="get-asset", drip_bps=200_000, times=1)
    sidecar = start_sidecar(local_registry, root, name)
    wait_until(lambda: any(p.stat().st_size > 0 for p in (root / ".staging").rglob("*.parts/*")),
               20, what="download under way")
    sidecar.stop(signal.SIGKILL)
    assert_current_complete(root, {name: "1.0.0"})
    restart_and_expect(local_registry, root, name, "1.1.0")


def test_sigkill_during_unzip(local_registry, tmp_path):
    name, root = first_version(local_registry, tmp_path)
    files = {f"part-{i:03d}.bin": os.urandom(1_000_000) for i in range(150)}
    local_registry.register_files(name, "1.1.0", files, status="Production")
    sidecar = start_sidecar(local_registry, root, name)
    wait_until(lambda: list((root / ".staging").glob(f"*/{name}/part-*")), 30, interval=0.005,
               what="unzip under way")
    sidecar.stop(signal.SIGKILL)
    assert not list((root / ".staging").glob("*/manifest.json"))
    assert_current_complete(root, {name: "1.0.0"})
    restart_and_expect(local_registry, root, name, "1.1.0")


class SilentServing:
    """A serving stand-in that accepts connections and never answers: validation hangs."""

    def __init__(self):
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(8)
        self.port = self.listener.getsockname()[1]
        self.accepted = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                self.accepted.append(self.listener.accept()[0])
            except OSError:
                return

    def close(self):
        for conn in self.accepted:
            conn.close()
        self.listener.close()


def test_sigkill_just_before_the_rename_then_resume_without_downloading(local_registry,
                                                                         tmp_path):
    name, root = first_version(local_registry, tmp_path)
    local_registry.register_files(name, "1.1.0", {"weights.bin": os.urandom(500_000)},
                                  status="Production")
    serving = SilentServing()
    try:
        sidecar = start_sidecar(local_registry, root, name, wait_ready=False,
                                SERVING_URL=f"http://127.0.0.1:{serving.port}",
                                RELOAD_TOKEN="token-for-test")
        # complete in snapshots/, validation pending: the instant before publish
        wait_until(lambda: len(list((root / "snapshots").iterdir())) == 2, 30,
                   what="staged snapshot")
        wait_until(lambda: serving.accepted, 10, what="validation request")
        sidecar.stop(signal.SIGKILL)
    finally:
        serving.close()
    assert published_versions(root) == {name: "1.0.0"}
    assert_current_complete(root, {name: "1.0.0"})
    local_registry.reset_request_counts()
    restart_and_expect(local_registry, root, name, "1.1.0")
    assert local_registry.downloads() == 0  # hard-linked, not fetched
