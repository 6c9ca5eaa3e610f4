"""The registry client against the local registry over real HTTP."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from devkit.processes import REPO_ROOT
from devkit.registry import running_local_registry, unique_name
from registry_sync.errors import (
    CometUnavailable,
    ModelNotFound,
    Unauthorized,
    VersionNotFound,
    WorkspaceNotFound,
)
from tests.support.comet_clients import client_for


def test_wrong_key_is_unauthorized_and_the_message_never_holds_it(local_registry):
    with pytest.raises(Unauthorized, match="check COMET_API_KEY") as caught:
        client_for(local_registry, key="wrong-key-123").get_model("anything")
    assert "wrong-key-123" not in str(caught.value)


def test_unknown_model_and_version_are_typed(local_registry):
    client = client_for(local_registry)
    with pytest.raises(ModelNotFound, match="check REGISTRY_MODELS"):
        client.get_model(unique_name("missing"))
    name = unique_name("clf")
    local_registry.register_files(name, "1.0.0", {"m": "a"})
    with pytest.raises(VersionNotFound):
        client.download(name, "9.9.9", Path(os.devnull))


def test_unknown_workspace_is_named(tmp_path):
    with (running_local_registry(tmp_path / "data", workspaces=("only-this",)) as registry,
          pytest.raises(WorkspaceNotFound, match="check COMET_WORKSPACE")):
        client_for(registry, workspace="other").get_model("m")


def test_5xx_are_retried_with_backoff_then_succeed(local_registry):
    name = unique_name("clf")
    local_registry.register_files(name, "1.0.0", {"m": "a"})
    local_registry.add_fault(path="registry-model/details", status=503, times=2)
    sleeps = []
    assert client_for(local_registry, sleeps).get_model(name).name == name
    assert len(sleeps) == 2 and all(0 < s <= 30 for s in sleeps)
    assert local_registry.count("registry-model/details") == 3


@pytest.mark.parametrize("header", ["retry_after", "retry_after_custom"])
def test_429_honours_retry_after_and_retry_after_custom(local_registry, header):
    name = unique_name("clf")
    local_registry.register_files(name, "1.0.0", {"m": "a"})
    local_registry.add_fault(path="registry-model/details", status=429, times=1, **{header: 7})
    sleeps = []
    client_for(local_registry, sleeps).get_model(name)
    assert sleeps == [7.0]


def test_no_retry_on_4xx(local_registry):
    sleeps = []
    with pytest.raises(ModelNotFound):
        client_for(local_registry, sleeps).get_model(unique_name("missing"))
    assert sleeps == []


def test_persistent_failure_becomes_comet_unavailable(local_registry):
    local_registry.add_fault(path="registry-model/details", status=500, times=None)
    sleeps = []
    with pytest.raises(CometUnavailable, match="HTTP 500"):
        client_for(local_registry, sleeps, attempts=3).get_model("m")
    assert len(sleeps) == 2


def test_connection_refused_is_retried_then_unavailable(tmp_path):
    with running_local_registry(tmp_path / "data") as registry:
        pass  # stopped: its port now refuses connections
    sleeps = []
    with pytest.raises(CometUnavailable, match="ConnectionError"):
        client_for(registry, sleeps, attempts=2).get_model("m")
    assert len(sleeps) == 1


def test_download_streams_the_exact_bytes_and_reports_progress(local_registry, tmp_path):
    name = unique_name("clf")
    payload = os.urandom(3 * 1024 * 1024)
    local_registry.register_files(name, "1.0.0", {"weights.bin": payload})
    seen = []
    size = client_for(local_registry).download(name, "1.0.0", tmp_path / "m.zip",
                                               lambda done, total: seen.append((done, total)))
    assert (tmp_path / "m.zip").read_bytes() == local_registry.download(name, version="1.0.0")
    assert size == seen[-1][0] == seen[-1][1]
    assert len(seen) >= 3


def test_a_download_cut_short_is_retried(local_registry, tmp_path):
    name = unique_name("clf")
    local_registry.register_files(name, "1.0.0", {"weights.bin": os.urandom(200_000)})
    local_registry.add_fault(path="item/download", cut_after=1000, times=1)
    sleeps = []
    client_for(local_registry, sleeps).download(name, "1.0.0", tmp_path / "m.zip")
    assert (tmp_path / "m.zip").read_bytes() == local_registry.download(name, version="1.0.0")
    assert len(sleeps) == 1


def test_a_stalled_download_is_bounded_by_the_timeout(local_registry, tmp_path):
    name = unique_name("clf")
    local_registry.register_files(name, "1.0.0", {"weights.bin": b"x" * 1000})
    local_registry.add_fault(path="item/download", stall=30, times=None)
    with pytest.raises(CometUnavailable, match=r"Timeout|Connection"):
        client_for(local_registry, download_timeout=1.0, attempts=2).download(
            name, "1.0.0", tmp_path / "m.zip")


MEMORY_PROBE = textwrap.dedent("""
    import resource, sys
    from pathlib import Path
    from registry_sync.registries.comet.client import CometClient
    from registry_sync.config import CometSettings
    url, key, ws, name, dest = sys.argv[1:6]
    client = CometClient(CometSettings(url, ws, key, None, 10.0, 60.0))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    size = client.download(name, "1.0.0", Path(dest))
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(size, before, after)
""")


def peak_rss_growth_kb(registry, name: str, dest: Path) -> tuple[int, int]:
    """Download in a fresh process; its size and how far peak RSS rose above the import peak."""
    done = subprocess.run([sys.executable, "-c", MEMORY_PROBE, registry.url, registry.api_key,
                           registry.workspace, name, str(dest)], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=300, check=True)
    size, before, after = map(int, done.stdout.split())
    print(f"\n{size / 1e6:.0f} MB download: peak RSS {after / 1024:.1f} MB "
          f"(+{(after - before) / 1024:.1f} MB over start-up)")
    return size, after - before


def test_a_200mb_download_keeps_memory_flat(local_registry, tmp_path):
    """Peak RSS grows by the same few MB for a 200 MB model as for a 2 MB one."""
    small, large = unique_name("small"), unique_name("large")
    for name, megabytes in ((small, 2), (large, 200)):
        blob = tmp_path / f"{name}.bin"
        with open(blob, "wb") as out:
            for _ in range(megabytes):
                out.write(os.urandom(1024 * 1024))
        local_registry.register_folder(name, "1.0.0", _folder_with(blob, tmp_path / name))
    _, small_growth = peak_rss_growth_kb(local_registry, small, tmp_path / "s.zip")
    large_size, large_growth = peak_rss_growth_kb(local_registry, large, tmp_path / "l.zip")
    assert large_size > 200 * 1024 * 1024
    assert large_growth - small_growth < 16 * 1024  # KB: not proportional to 200 MB


def _folder_with(blob: Path, folder: Path) -> Path:
    folder.mkdir()
    blob.rename(folder / "weights.bin")
    return folder


def test_a_retry_after_longer_than_the_cap_ends_the_call_and_carries_the_hint(local_registry):
    local_registry.add_fault(path="registry-model/details", status=429, times=1,
                             retry_after_custom=120)
    sleeps = []
    with pytest.raises(CometUnavailable) as caught:
        client_for(local_registry, sleeps, max_wait=10).get_model("m")
    assert sleeps == [] and caught.value.retry_after == 120
