"""LEADER_ELECTION: on in a cluster unless turned off; client-go's timing rules; a sealing key;
a Lease per Deployment."""

import argparse

import pytest

from registry_sync import config
from registry_sync.errors import ConfigError

BASE = {"MODEL_ROOT": "/tmp/models", "REGISTRY_MODELS": "a", "COMET_WORKSPACE": "ws",
        "COMET_API_KEY": "k3y-secret"}
CLUSTER = {"KUBERNETES_SERVICE_HOST": "10.0.0.1", "POD_NAME": "web-7d9f8c6b5-abcde",
           "POD_NAMESPACE": "ml-serving", "POD_IP": "10.1.2.3", "SIDECAR_LISTEN": "0.0.0.0:8090",
           "DECISION_KEY": "a-decision-key-of-32-characters!"}


def load(**environ: str) -> config.SyncConfig:
    return config.sync_config(argparse.Namespace(), {**BASE, **environ})


def test_outside_a_cluster_every_sidecar_polls_on_its_own():
    assert load().election is None


def test_in_a_cluster_the_pod_name_is_the_candidate_on_its_deployments_lease():
    election = load(**CLUSTER).election
    assert (election.namespace, election.lease_name, election.identity) == (
        "ml-serving", "web", "web-7d9f8c6b5-abcde")
    other = load(**{**CLUSTER, "POD_NAME": "api-server-5c4d7b9f8-xyz12"}).election
    assert other.lease_name == "api-server"
    assert load(**CLUSTER, LEADER_ELECTION_LEASE="shared").election.lease_name == "shared"
    assert load(**CLUSTER).decision_key == CLUSTER["DECISION_KEY"]
    assert (election.lease_duration, election.renew_deadline, election.retry_period) == (
        15, 10, 2)
    assert load(**CLUSTER).peer_url == "http://10.1.2.3:8090"
    assert load(**CLUSTER).kube_api_url == "https://10.0.0.1:443"


def test_off_restores_polling_by_every_replica_in_a_cluster():
    assert load(**CLUSTER, LEADER_ELECTION="off").election is None


@pytest.mark.parametrize("bad", [{"LEADER_ELECTION": "on"},
                                 {"LEADER_ELECTION_RENEW_DEADLINE": "20"},
                                 {"LEADER_ELECTION_RETRY_PERIOD": "10"},
                                 {"POD_NAME": ""}, {"POD_IP": ""},
                                 {"SIDECAR_LISTEN": "0.0.0.0:0"},
                                 # client-go: RenewDeadline > 1.2 x RetryPeriod
                                 {"LEADER_ELECTION_RENEW_DEADLINE": "2.3",
                                  "LEADER_ELECTION_RETRY_PERIOD": "2"},
                                 {"LEADER_ELECTION_LEASE_DURATION": "10",
                                  "LEADER_ELECTION_RENEW_DEADLINE": "10"},
                                 {"LEADER_ELECTION_LEASE": "Not_A_Name"},
                                 {"DECISION_KEY": ""}, {"DECISION_KEY": "short"}])
def test_a_bad_election_setting_is_named(bad):
    with pytest.raises(ConfigError, match=r"LEADER_ELECTION|POD_NAME|POD_IP|SIDECAR_LISTEN|"
                                          r"DECISION_KEY"):
        load(**{**CLUSTER, **bad})


def test_a_short_decision_key_file_is_refused_at_start_and_after_a_rotation(tmp_path):
    """A key of a few characters could be found offline from one sealed decision."""
    key_file = tmp_path / "decision-key"
    key_file.write_text("short")
    environ = {**CLUSTER, "DECISION_KEY": "", "DECISION_KEY_FILE": str(key_file)}
    with pytest.raises(ConfigError, match="DECISION_KEY_FILE"):
        load(**environ)
    key_file.write_text(CLUSTER["DECISION_KEY"])
    loaded = load(**environ)
    assert loaded.read_decision_key() == CLUSTER["DECISION_KEY"].encode()
    key_file.write_text("short")
    assert loaded.read_decision_key() == b""


def test_a_fractional_lease_duration_is_written_rounded_up_never_under_the_deadline():
    """10.5 s / 10.4 s was two leaders: the Lease held round(10.5) = 10 s < 10.4 s."""
    from registry_sync.cluster.election import Elector, LeaseRecord

    class Store:
        written: LeaseRecord | None = None

        def get(self):
            return None

        def create(self, record):
            Store.written = record
            return record

    election = load(**CLUSTER, LEADER_ELECTION_LEASE_DURATION="10.5",
                    LEADER_ELECTION_RENEW_DEADLINE="10.4").election
    Elector(Store(), election).try_acquire_or_renew()
    assert Store.written.lease_duration == 11 > election.renew_deadline
