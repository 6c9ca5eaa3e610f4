"""Replicas of one Deployment as real sidecar processes sharing a Kubernetes API stand-in.

    with Server(FakeApi()) as api:
        replicas = start_replicas(local_registry, api.url, work, model, 3)

Each replica has its own MODEL_ROOT and ops port, POD_NAME `pod-<i>`, POD_IP 127.0.0.1 (so its
peer URL is its ops server on loopback), and short election durations so that tests and the
benchmark see takeovers in seconds.
"""

from __future__ import annotations

import json
from pathlib import Path

from devkit.processes import Sidecar, start_sidecar, wait_until
from registry_sync.cluster.decision_seal import PREFIX, seal

NAMESPACE, LEASE = "ml-serving", "comet-registry-sync"
PEER_TOKEN = "replicas-shared-token-0123456789"
DECISION_KEY = "deployment-decision-key-0123456789"
FAST_ELECTION = {"LEADER_ELECTION_LEASE_DURATION": "3", "LEADER_ELECTION_RENEW_DEADLINE": "2",
                 "LEADER_ELECTION_RETRY_PERIOD": "0.5"}


def replica_env(api_url: str, token_file: Path, index: int, **extra: str) -> dict[str, str]:
    """The variables that put a sidecar into the Deployment as pod-<index>."""
    return {"KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_API_URL": api_url,
            "KUBERNETES_TOKEN_FILE": str(token_file), "POD_NAME": f"pod-{index}",
            "POD_NAMESPACE": NAMESPACE, "POD_IP": "127.0.0.1", "RELOAD_TOKEN": PEER_TOKEN,
            "DECISION_KEY": DECISION_KEY, "LEADER_ELECTION_LEASE": LEASE, **FAST_ELECTION,
            **extra}


def start_replica(registry, api_url: str, work: Path, models: str, index: int,
                  **extra: str) -> Sidecar:
    """Start pod-<index>'s sidecar with MODEL_ROOT work/pod-<index>."""
    token_file = work / "service-account-token"
    if not token_file.exists():
        work.mkdir(parents=True, exist_ok=True)
        token_file.write_text("service-account-token\n")
    return start_sidecar(registry, work / f"pod-{index}", models,
                         **replica_env(api_url, token_file, index, **extra))


def start_replicas(registry, api_url: str, work: Path, models: str, count: int,
                   **extra: str) -> list[Sidecar]:
    """Start `count` replicas (pod-0 ... pod-<count-1>)."""
    return [start_replica(registry, api_url, work, models, i, **extra) for i in range(count)]


def holder(api) -> str:
    """The Lease's holderIdentity in the stand-in ('' if none)."""
    lease = api.leases.objects.get((NAMESPACE, LEASE))
    return (lease or {}).get("spec", {}).get("holderIdentity") or ""


def decision_json(lease: dict) -> dict:
    """The decision a Lease's annotation carries, seal removed ({} if none or unreadable)."""
    text = (lease.get("metadata", {}).get("annotations") or {}).get(
        "registry-sync.comet.com/decision") or ""
    if text.startswith(PREFIX):
        text = text[len(PREFIX):].partition(":")[2]
    try:
        found = json.loads(text) if text else {}
    except ValueError:
        return {}
    return found if isinstance(found, dict) else {}


def sealed(raw: dict | str, key: str = DECISION_KEY, lease: str = LEASE) -> str:
    """A decision's annotation value sealed with `key` for the Lease `lease`."""
    text = raw if isinstance(raw, str) else json.dumps(raw)
    return seal(text, key.encode(), f"{NAMESPACE}/{lease}")


def _decided(lease: dict) -> dict[str, str]:
    models = decision_json(lease).get("models")
    return {m["name"]: m["version"] for m in models} if isinstance(models, list) else {}


def decided_versions(api) -> dict[str, str]:
    """The versions the decision on the Lease names ({} if none)."""
    return _decided(api.leases.objects.get((NAMESPACE, LEASE)) or {})


def decision_history(api) -> list[dict[str, str]]:
    """Every decision the Lease has carried, in order, repeats collapsed."""
    seen: list[dict[str, str]] = []
    for _version, _kind, lease in list(api.leases.history):
        decided = _decided(lease)
        if decided and (not seen or seen[-1] != decided):
            seen.append(decided)
    return seen


def wait_for_leader(api, timeout: float = 20.0) -> str:
    """The identity holding the Lease, once one does."""
    return wait_until(lambda: holder(api), timeout, what="a Lease holder")
