"""Peer file serving: a real sidecar serves its files; a fetch trusts only the manifest."""

import dataclasses
import os

import pytest
import requests

from devkit.processes import published, running_sidecar
from devkit.registry import unique_name
from registry_sync.cluster.peer import PeerClient, PeerRefused, PeerUnavailable

TOKEN = "peer-token-0123456789"


@pytest.fixture
def peer(local_registry, tmp_path):
    """A sidecar that published one model with two files; yields (sidecar, its manifest)."""
    name = unique_name("clf")
    local_registry.register_files(name, "1.0.0", {"model.pkl": os.urandom(300_000),
                                                  "meta/info.json": b'{"a": 1}'},
                                  status="Production")
    with running_sidecar(local_registry, tmp_path / "leader", name, RELOAD_TOKEN=TOKEN) as side:
        side.wait_for_versions({name: "1.0.0"})
        yield side, published(side.root)


def test_a_follower_fetches_exactly_the_decided_files(peer, tmp_path):
    """Every file arrives with the decided size and SHA-256; the bytes are the leader's."""
    sidecar, decided = peer
    entry = decided.models[0]
    fetched = PeerClient(lambda: TOKEN).fetch_model(sidecar.url, decided.snapshotId, entry,
                                            tmp_path / "follower")
    assert fetched == entry
    for item in entry.files:
        assert (tmp_path / "follower" / item.path).read_bytes() == (
            sidecar.root / "snapshots" / decided.snapshotId / entry.name / item.path).read_bytes()


def test_a_lying_peer_is_refused_and_nothing_it_sent_is_kept(peer, tmp_path):
    """A decided hash the peer's bytes do not match: PeerRefused, the partial file removed."""
    sidecar, decided = peer
    entry = decided.models[0]
    lie = dataclasses.replace(entry.files[0], sha256="0" * 64)
    decided_elsewhere = dataclasses.replace(entry, files=(lie,))
    with pytest.raises(PeerRefused, match="SHA-256"):
        PeerClient(lambda: TOKEN).fetch_model(sidecar.url, decided.snapshotId, decided_elsewhere,
                                      tmp_path / "follower")
    assert not (tmp_path / "follower" / lie.path).exists()


def test_files_need_the_token_and_a_manifest_listing_them(peer, tmp_path):
    """No token 401, a wrong one 401; a path outside the manifest 404, never the file."""
    sidecar, decided = peer
    entry = decided.models[0]
    url = f"{sidecar.url}/-/files/{decided.snapshotId}/{entry.name}/{entry.files[0].path}"
    assert requests.get(url, timeout=5).status_code == 401
    wrong = {"Authorization": "Bearer nope"}
    assert requests.get(url, headers=wrong, timeout=5).status_code == 401
    right = {"Authorization": f"Bearer {TOKEN}"}
    for path in (f"{decided.snapshotId}/manifest.json", f"{decided.snapshotId}/{entry.name}/x",
                 f"{decided.snapshotId}/../.sync-state.json", "../../etc/passwd"):
        assert requests.get(f"{sidecar.url}/-/files/{path}", headers=right,
                            timeout=5).status_code == 404
    with pytest.raises(PeerUnavailable, match="401"):
        PeerClient(lambda: "nope").fetch_model(sidecar.url, decided.snapshotId, entry,
                                               tmp_path / "f")


def test_status_without_the_token_shows_only_what_is_served(peer):
    """No token: versions and health, no paths, error texts or refusals; the token: all."""
    sidecar, decided = peer
    public = requests.get(f"{sidecar.url}/status", timeout=5).json()
    assert public["published"]["versions"] == decided.versions and public["ready"] is True
    assert not {"modelRoot", "lastError", "rejected", "installed"} & set(public)
    wrong = requests.get(f"{sidecar.url}/status", timeout=5,
                         headers={"Authorization": "Bearer nope"}).json()
    assert set(wrong) == set(public)
    whole = sidecar.status()
    assert whole["modelRoot"] == str(sidecar.root) and "lastError" in whole
