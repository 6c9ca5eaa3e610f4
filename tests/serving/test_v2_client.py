"""The Open Inference Protocol (V2) through a real third-party client: tritonclient's HTTP client.

One serving front (two workers, on loopback) serves 2.0.0 as champion with 2.1.0 (another model)
in shadow, and sends MPM events to a real local registry. tritonclient is the client users of
Triton, KServe and MLServer already have; it sends its tensors binary by default, JSON on
request, and reads our answers and errors as it reads theirs.
"""

from __future__ import annotations

import numpy as np
import pytest
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

from devkit.load import Load, triton_tensors
from devkit.processes import wait_until
from devkit.registry import local_registry_server  # noqa: F401
from devkit.snapshots import build_snapshot
from registry_sync.store.publish import publish as publish_link
from tests.support.diamonds import CLASSIFIER, VALID
from tests.support.mpm import events_by_id, mpm_env, sample
from tests.support.serving_process import launch, wait_for_workers

FEATURES = list(VALID)
OTHERS = [{**VALID, "carat": 1.2, "color": "J", "price": 9000.0, "x": 6.8, "y": 6.7, "z": 4.2},
          {**VALID, "carat": 2.5, "clarity": "IF", "price": 25000.0},
          {**VALID, "carat": 0.5, "color": "D", "clarity": "I1", "depth": 70.0}]


@pytest.fixture(scope="module")
def server(tmp_path_factory, trained_models, local_registry_server):  # noqa: F811
    """Serving 2.0.0, with 2.1.0 in shadow and MPM events going to the local registry."""
    work = tmp_path_factory.mktemp("v2")
    root = work / "models"
    root.mkdir()
    build_snapshot(root, {CLASSIFIER: trained_models.pipeline}, "2.0.0")
    candidate = build_snapshot(root, {CLASSIFIER: trained_models.alternative}, "2.1.0",
                               publish=False)
    publish_link(root, candidate, link="candidate")
    running = launch(root, work, **mpm_env(local_registry_server))
    running.wait_for_version("2.0.0", timeout=60)
    # Inputs reach the shadow only once a worker holds the challenger (loaded after the champion)
    wait_for_workers(running, lambda roles: roles["challenger"] is not None)
    yield running
    running.stop()


@pytest.fixture
def client(server):
    """tritonclient's HTTP client of the server."""
    made = triton.InferenceServerClient(server.url.removeprefix("http://"),
                                        connection_timeout=30, network_timeout=30)
    yield made
    made.close()


def tensors(instances: list[dict], binary: bool) -> list[triton.InferInput]:
    """One tensor per feature, in the schema's order, as a tritonclient user builds them."""
    return triton_tensors([{name: i[name] for name in FEATURES} for i in instances], binary)


def api_v1(server, instances: list[dict]) -> list[dict]:
    """The same instances' predictions from /api/v1/predict."""
    answer = server.session.post(server.url + "/api/v1/predict",
                                 json={"instances": instances}, timeout=10)
    assert answer.status_code == 200, answer.text
    return answer.json()["predictions"]


def test_health_and_metadata_describe_the_served_model(server, client):
    assert client.is_server_live() and client.is_server_ready()
    assert client.get_server_metadata()["name"] == "comet-registry-sync"
    assert client.is_model_ready(CLASSIFIER)
    assert not client.is_model_ready("another-model")
    described = client.get_model_metadata(CLASSIFIER)
    served = server.session.get(server.url + "/api/v1/model", timeout=10).json()
    assert described["versions"] == ["2.0.0"]
    assert [(i["name"], i["datatype"]) for i in described["inputs"]] == [
        (f["name"], "BYTES" if f["type"] == "category" else "FP64") for f in served["features"]]
    assert [o["name"] for o in described["outputs"]] == ["label", "probability",
                                                          "probabilities"]
    with pytest.raises(InferenceServerException) as refused:
        client.get_model_metadata("another-model")
    assert refused.value.status() == "404" and "another-model" in refused.value.message()


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
def test_single_and_batch_predictions_are_those_of_api_v1(server, client, binary):
    for instances in ([VALID], [VALID, *OTHERS]):
        result = client.infer(CLASSIFIER, tensors(instances, binary))
        expected = api_v1(server, instances)
        labels = [v.decode() if isinstance(v, bytes) else v for v in result.as_numpy("label")]
        assert labels == [p["label"] for p in expected]
        assert result.as_numpy("probability").tolist() == [p["probability"] for p in expected]
        both = result.as_numpy("probabilities").reshape(len(instances), 2)
        assert np.allclose(both.sum(axis=1), 1.0)
        answer = result.get_response()
        assert (answer["model_name"], answer["model_version"]) == (CLASSIFIER, "2.0.0")
        assert answer["parameters"]["role"] == "champion"


def test_one_2d_bytes_tensor_answers_as_one_tensor_per_feature(server, client):
    instances = [VALID, *OTHERS]
    table = triton.InferInput("instances", [len(instances), len(FEATURES)], "BYTES")
    table.set_data_from_numpy(np.array([[str(i[n]) for n in FEATURES] for i in instances],
                                       dtype=object), binary_data=False)
    result = client.infer(CLASSIFIER, [table],
                          outputs=[triton.InferRequestedOutput("label", binary_data=False)])
    assert result.as_numpy("probability") is None, "only the asked output is answered"
    assert [v.decode() if isinstance(v, bytes) else v for v in result.as_numpy("label")] == [
        p["label"] for p in api_v1(server, instances)]


def _carat(value, datatype: str = "FP64", shape=(1,)):
    return lambda inputs: inputs.__setitem__(0, _tensor("carat", value, datatype, shape))


def _tensor(name: str, value, datatype: str, shape) -> triton.InferInput:
    tensor = triton.InferInput(name, list(shape), datatype)
    dtype = object if datatype == "BYTES" else np.float64
    tensor.set_data_from_numpy(np.full(shape, value, dtype=dtype), binary_data=False)
    return tensor


BAD = {
    "wrong datatype (text for a number)": (_carat("0.31", "BYTES"), "carat", "datatype"),
    "wrong datatype (a number for a category)": (
        lambda inputs: inputs.__setitem__(1, _tensor("color", 3.0, "FP64", (1,))), "color",
        "BYTES"),
    "wrong shape": (_carat(0.31, shape=(1, 2)), "carat", "shape"),
    "missing input": (lambda inputs: inputs.pop(5), "price", "missing"),
    "NaN": (_carat(float("nan")), "carat", "finite"),
    "out of bounds": (_carat(99.0), "carat", "between 0.1 and 6"),
    "rows that disagree": (_carat(0.31, shape=(2,)), "carat", "same number of rows"),
    "unknown category": (lambda inputs: inputs.__setitem__(
        1, _tensor("color", "Z", "BYTES", (1,))), "color", "must be one of"),
}


@pytest.mark.parametrize("case", BAD.values(), ids=BAD.keys())
def test_bad_input_is_a_400_naming_the_input(client, case):
    change, name, words = case
    inputs = tensors([VALID], binary=False)
    change(inputs)
    with pytest.raises(InferenceServerException) as refused:
        client.infer(CLASSIFIER, inputs)
    assert refused.value.status() == "400", refused.value.message()
    assert f"'{name}'" in refused.value.message() and words in refused.value.message()


def test_an_unknown_model_or_version_is_a_404(client):
    for name, version in (("another-model", ""), (CLASSIFIER, "9.9.9")):
        with pytest.raises(InferenceServerException) as refused:
            client.infer(name, tensors([VALID], binary=False), model_version=version)
        assert refused.value.status() == "404", refused.value.message()


def test_v2_answers_are_counted_shadowed_and_sent_to_mpm(server, client,
                                                        local_registry_server):  # noqa: F811
    counted = sample(server, "serving_predictions_total", interface="v2", version="2.0.0")
    scored = sample(server, "serving_shadow_scored_total", version="2.1.0")
    ids = [client.infer(CLASSIFIER, tensors([VALID], binary=True)).get_response()
           ["parameters"]["prediction_id"] for _ in range(20)]
    assert sample(server, "serving_predictions_total", interface="v2",
                  version="2.0.0") == counted + 20
    wait_until(lambda: sample(server, "serving_shadow_scored_total", version="2.1.0")
               >= scored + 20, timeout=30, what="the challenger's shadow scores of V2 inputs")
    wait_until(lambda: set(ids) <= set(events_by_id(local_registry_server)), timeout=30,
               what="the MPM events of the V2 predictions")
    event = events_by_id(local_registry_server)[ids[0]]
    assert event["features"] == VALID and event["modelVersion"] == "2.0.0"
    assert event["prediction"]["value"] in ("Gold", "Silver")


def test_a_hot_swap_under_v2_load_fails_no_request(server, trained_models):
    with Load(server.url, clients=2, seconds=60, max_requests=2000,
              v2_model=CLASSIFIER) as load:
        wait_until(lambda: len(load.answers) > 50, timeout=20, what="the V2 load to run")
        server.publish("3.0.0", {CLASSIFIER: trained_models.pipeline})
        server.wait_for_version("3.0.0", timeout=30)
        count = len(load.answers)
        wait_until(lambda: len(load.answers) > count + 50, timeout=20, what="more answers")
    load.assert_all_ok()
    assert load.versions() == {"2.0.0", "3.0.0"}


def test_the_fronts_body_limit_applies_to_v2(server):
    """A body over MAX_BODY_BYTES (2 MiB by default) is refused by the front before the app."""
    answer = server.session.post(f"{server.url}/v2/models/{CLASSIFIER}/infer",
                                 data=b" " * (2 * 1024 * 1024 + 1), timeout=30)
    assert answer.status_code == 413 and "larger than" in answer.json()["error"] + \
        answer.json().get("message", "")
