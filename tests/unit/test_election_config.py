"""LEADER_ELECTION: on in a cluster unless turned off; the three durations must nest."""

import argparse

import pytest

from registry_sync import config
from registry_sync.errors import ConfigError

BASE = {"MODEL_ROOT": "/tmp/models", "REGISTRY_MODELS": "a", "COMET_WORKSPACE": "ws",
        "COMET_API_KEY": "k3y-secret"}
CLUSTER = {"KUBERNETES_SERVICE_HOST": "10.0.0.1", "POD_NAME": "web-7d9f-abcde",
           "POD_NAMESPACE": "ml-serving", "POD_IP": "10.1.2.3", "SIDECAR_LISTEN": "0.0.0.0:8090"}


def load(**environ: str) -> config.SyncConfig:
    return config.sync_config(argparse.Namespace(), {**BASE, **environ})


def test_outside_a_cluster_every_sidecar_polls_on_its_own():
    assert load().election is None


def test_in_a_cluster_the_pod_name_is_the_candidate_on_the_default_lease():
    election = load(**CLUSTER).election
    assert (election.namespace, election.lease_name, election.identity) == (
        "ml-serving", "comet-registry-sync", "web-7d9f-abcde")
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
                                 {"SIDECAR_LISTEN": "0.0.0.0:0"}])
def test_a_bad_election_setting_is_named(bad):
    with pytest.raises(ConfigError, match=r"LEADER_ELECTION|POD_NAME|POD_IP|SIDECAR_LISTEN"):
        load(**{**CLUSTER, **bad})
