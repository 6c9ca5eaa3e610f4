"""Champion and challenger in one app: shadow figures, canary share and stickiness, the guard.

The app is real (real models, real loader); only the challenger's predictor is replaced where a
test needs one that raises or sleeps.
"""

from __future__ import annotations

import dataclasses
import gc
import json
import math
import threading
import time
import tracemalloc
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from devkit.processes import wait_until
from devkit.snapshots import build_snapshot
from registry_sync.store.publish import publish as publish_link
from serving.challenger.canary import in_canary
from serving.challenger.roles import Answer, Role
from serving.challenger.shadow import ModelInput
from serving.errors import InvalidInput
from serving.inputs.checks import encode, parse_body
from serving.inputs.schema import LABELS
from serving.model.predictions import classified, regressed
from tests.support.diamonds import CLASSIFIER, VALID

KEY_HEADER = "X-Client-Id"


def stage_candidate(root: Path, folder: Path, version: str = "1.1.0") -> str:
    """Build a snapshot and point `candidate` at it, as the sidecar does for Staging."""
    snapshot_id = build_snapshot(root, {CLASSIFIER: folder}, version, publish=False)
    publish_link(root, snapshot_id, link="candidate")
    return snapshot_id


class Raising:
    """A predictor that fails on every input."""

    classes = ("Gold", "Silver")

    def predict(self, matrix):
        raise RuntimeError("challenger broke")


class Sleeping:
    """A predictor that answers after a long pause."""

    def __init__(self, inner, seconds: float):
        self.inner, self.seconds = inner, seconds

    def predict(self, matrix):
        time.sleep(self.seconds)
        return self.inner.predict(matrix)


class Held:
    """A predictor whose first call waits until released; it counts its calls and rows."""

    def __init__(self, inner):
        self.inner, self.release, self.calls, self.rows = inner, threading.Event(), 0, 0

    def predict(self, matrix):
        self.calls += 1
        self.rows += len(matrix)
        self.release.wait(timeout=20)
        return self.inner.predict(matrix)


def replace_predictor(app, predictor) -> None:
    """Swap the held challenger's predictor (its snapshot stays the same)."""
    holder = app.extensions["serving.challenger.roles"].challenger
    held = holder.held
    holder.held = dataclasses.replace(held, model=dataclasses.replace(held.model,
                                                                      predictor=predictor))


def challenger_of(client) -> dict:
    """The `roles` block of /api/v1/model."""
    return client.get("/api/v1/model").get_json()["roles"]


@pytest.fixture
def both(make_app, publish, model_root, trained_models):
    """An app serving 1.0.0 as champion and 1.1.0 (another model) as challenger."""

    def make(**challenger_settings):
        publish("1.0.0")
        stage_candidate(model_root, trained_models.alternative)
        settings = dataclasses.replace(_defaults(), **challenger_settings)
        return settle(make_app(challenger=settings))

    return make


def settle(app):
    """Converge (as the watcher would) until the validator's verdict on the candidate is in."""
    roles = app.extensions["serving.challenger.roles"]

    def settled() -> bool:
        roles.converge()
        return roles.challenger.validating is None and roles.challenger.candidate() is not None

    wait_until(settled, timeout=30, what="the validator's verdict on the candidate")
    return app


def _defaults():
    from serving.config import ChallengerConfig

    # In a thread: these tests replace the challenger's predictor in this process.
    return ChallengerConfig(key_header=KEY_HEADER, shadow_process=False)


def predict(client, key: str = "client-1"):
    """One JSON prediction; the response closed, so the shadow input is handed over."""
    return client.post("/api/v1/predict", json=VALID, headers={KEY_HEADER: key}, buffered=True)


def test_shadow_answers_with_the_champion_and_compares_the_challenger(both):
    client = both().test_client()
    answers = [predict(client, f"c{i}") for i in range(30)]
    assert {a.status_code for a in answers} == {200}
    assert {a.headers["X-Model-Role"] for a in answers} == {"champion"}
    assert {a.get_json()["model"]["version"] for a in answers} == {"1.0.0"}
    assert answers[0].get_json()["model"]["role"] == "champion"
    # all workers' figures are reused for a second: wait for them to include every input
    # (the counters are written just before the worker's own log: wait for both)
    roles = wait_until(lambda: (r := challenger_of(client))["challenger"]["all_workers"]
                       ["compared"] == 30 and r["challenger"]["shadow"]["total"]["compared"] == 30
                       and r, timeout=20, what="30 shadow comparisons")
    assert roles["mode"] == "shadow"
    assert roles["champion"]["version"] == "1.0.0"
    challenger = roles["challenger"]
    assert challenger["version"] == "1.1.0" and challenger["status"] == "Production"
    assert 0 <= challenger["shadow"]["total"]["agreement"] <= 1
    page = client.get("/").get_data(as_text=True)
    assert "1.1.0 in shadow: agrees on" in page and "of 30 requests" in page


def shadow_counters(client) -> dict[str, float]:
    """serving_shadow_scored_total by outcome and the gap sum, for the challenger 1.1.0."""
    found = {"agreed": 0.0, "disagreed": 0.0, "gap": 0.0}
    for family in text_string_to_metric_families(client.get("/metrics").get_data(as_text=True)):
        for sample in family.samples:
            if sample.labels.get("version") != "1.1.0":
                continue
            if sample.name == "serving_shadow_scored_total" and \
                    sample.labels["outcome"] in found:
                found[sample.labels["outcome"]] += sample.value
            elif sample.name == "serving_shadow_probability_gap_total":
                found["gap"] += sample.value
    return found


def varied(count: int) -> list[dict]:
    """Distinct instances (carat and price vary), so that the answers differ row by row."""
    return [{**VALID, "carat": round(0.3 + 0.15 * i, 2), "price": 400.0 + 350.0 * i}
            for i in range(count)]


def test_inputs_queued_behind_a_busy_challenger_are_scored_in_one_call_and_counted_by_row(both):
    app = both()
    client = app.test_client()
    roles = app.extensions["serving.challenger.roles"]
    challenger = roles.challenger.held.model.predictor
    held = Held(challenger)
    replace_predictor(app, held)
    rows = varied(16)
    before = shadow_counters(client)

    def send(instance, key):
        return client.post("/api/v1/predict", json=instance, headers={KEY_HEADER: key},
                           buffered=True)

    first = send(rows[0], "c0")
    wait_until(lambda: held.calls == 1, timeout=10, what="the challenger's first call")
    batch = send({"instances": rows[1:4]}, "c1")
    singles = [send(row, f"c{i}") for i, row in enumerate(rows[4:], start=2)]
    held.release.set()
    wait_until(lambda: challenger_of(client)["challenger"]["shadow"]["total"]["samples"] == 14,
               timeout=20, what="14 shadow samples")
    assert held.calls == 2, "the 13 inputs queued meanwhile must be scored in one call"
    assert held.rows == 16
    # What the counters must say: the rows recomputed one by one against the champion's answers.
    answered = [first.get_json(), *batch.get_json()["predictions"],
                *(single.get_json() for single in singles)]
    answers = challenger.predict(_matrix_of(rows, app))
    labels, probabilities = answers.labels, answers.probabilities
    agree = [a["label"] == label for a, label in zip(answered, labels, strict=True)]
    gaps = [abs(a["probability"] - (p if a["label"] == label else 1 - p))
            for a, label, p in zip(answered, labels, probabilities, strict=True)]
    assert len({round(g, 6) for g in gaps}) > 1, \
        "the rows must differ, or a wrong row range would go unnoticed"
    after = wait_until(lambda: (c := shadow_counters(client))["agreed"] + c["disagreed"] -
                       before["agreed"] - before["disagreed"] == 16 and c, timeout=10,
                       what="16 rows counted")
    assert after["agreed"] - before["agreed"] == sum(agree)
    assert after["gap"] - before["gap"] == pytest.approx(sum(gaps), abs=1e-6)
    per_input = [agree[0], all(agree[1:4]), *agree[4:]]  # the batch agrees if all its rows do
    total = challenger_of(client)["challenger"]["shadow"]["total"]
    assert total["agreement"] == pytest.approx(sum(per_input) / 14, abs=1e-6)


def test_inputs_arriving_together_are_scored_in_one_call(both, monkeypatch):
    monkeypatch.setattr("serving.challenger.shadow.GATHER_SECONDS", 1.0)
    app = both()
    client = app.test_client()
    held = Held(app.extensions["serving.challenger.roles"].challenger.held.model.predictor)
    held.release.set()
    replace_predictor(app, held)
    for i, row in enumerate(varied(5)):
        client.post("/api/v1/predict", json=row, headers={KEY_HEADER: f"c{i}"}, buffered=True)
        time.sleep(0.05)  # time enough for a scorer that does not gather to take each alone
    wait_until(lambda: challenger_of(client)["challenger"]["shadow"]["total"]["samples"] == 5,
               timeout=20, what="5 shadow samples")
    assert (held.calls, held.rows) == (1, 5), "inputs within the gathering window: one call"


def _matrix_of(rows, app):
    """The champion's matrix for these rows."""
    schema = app.extensions["serving.challenger.roles"].champion.require().schema
    return encode(schema, rows, single=False)


@pytest.mark.parametrize("predictor", ["raising", "sleeping"])
def test_a_challenger_that_raises_or_sleeps_never_fails_nor_delays_the_champion(both, predictor):
    app = both(queue_size=1000 if predictor == "raising" else 4)
    client = app.test_client()
    held = app.extensions["serving.challenger.roles"].challenger.held
    replace_predictor(app, Raising() if predictor == "raising" else
                      Sleeping(held.model.predictor, 5.0))
    started = time.monotonic()
    answers = [predict(client, f"c{i}") for i in range(20)]
    elapsed = time.monotonic() - started
    assert {a.status_code for a in answers} == {200}
    assert {a.headers["X-Model-Role"] for a in answers} == {"champion"}
    assert elapsed < 5.0, "a champion answer waited for the challenger"
    shadow = challenger_of(client)["challenger"]["shadow"]
    if predictor == "raising":
        wait_until(lambda: challenger_of(client)["challenger"]["shadow"]["total"]["errors"] == 20,
                   timeout=20, what="20 shadow errors")
    else:
        # the sleeping scorer holds at most one batch (one queue's worth); the queue 4 more
        assert shadow["dropped"] >= 20 - 4 - 4, "a full queue must drop, not block"
        everyone = challenger_of(client)["challenger"]["all_workers"]  # the counters' sum
        assert everyone["dropped"] >= shadow["dropped"]


def test_canary_answers_its_share_sticky_per_client_key(both):
    app = both(canary_percent=20.0)
    roles = app.extensions["serving.challenger.roles"]
    matrix = _matrix(roles)
    answered = [roles.predict(matrix, lambda i=i: f"client-{i}").role.value for i in range(5000)]
    share = answered.count("challenger") / len(answered)
    assert 0.17 <= share <= 0.23, share
    client = app.test_client()
    again = [predict(client, f"client-{i}") for i in range(300)]
    assert [a.headers["X-Model-Role"] for a in again] == answered[:300], "sticky per client"
    chosen = next(a for a in again if a.headers["X-Model-Role"] == "challenger")
    assert chosen.headers["X-Model-Version"] == "1.1.0"
    assert chosen.get_json()["model"]["role"] == "challenger"
    assert challenger_of(client)["mode"] == "canary"


def _matrix(roles):
    from serving.challenger.shadow import ModelInput
    from serving.inputs.checks import parse_body

    schema = roles.champion.live.schema
    return ModelInput(parse_body(VALID, schema, 1)[0], schema,
                      lambda other: parse_body(VALID, other, 1)[0])


def test_without_a_key_header_setting_the_client_address_decides(both):
    client = both(canary_percent=50.0, key_header=None).test_client()
    roles = {predict(client, f"client-{i}").headers["X-Model-Role"] for i in range(40)}
    expected = "challenger" if in_canary("127.0.0.1", 50.0) else "champion"
    assert roles == {expected}, "one address, one role, whatever headers it sends"


def test_behind_a_proxy_the_forwarded_client_address_decides(both):
    """An ingress forwards every request from its own address, the client's in the header."""
    client = both(canary_percent=50.0, key_header=None).test_client()
    addresses = [f"203.0.113.{i}" for i in range(1, 41)]
    answers = [client.post("/api/v1/predict", json=VALID, buffered=True,
                           headers={"X-Forwarded-For": address}) for address in addresses]
    roles = [answer.headers["X-Model-Role"] for answer in answers]
    assert roles == ["challenger" if in_canary(a, 50.0) else "champion" for a in addresses]
    assert len(set(roles)) == 2, "clients are spread over both roles, not all on one"


def test_the_guard_takes_a_failing_challenger_out_of_the_canary(both):
    app = both(canary_percent=50.0, guard_window=20, guard_min_answers=10)
    client = app.test_client()
    replace_predictor(app, Raising())
    answers = [predict(client, f"client-{i}") for i in range(200)]
    assert {a.status_code for a in answers} == {200}, "a failed canary answer is the champion's"
    assert {a.headers["X-Model-Role"] for a in answers} == {"champion"}
    roles = challenger_of(client)
    assert roles["mode"] == "canary-stopped"
    guard = roles["challenger"]["canary"]["guard"]
    assert "error rate" in guard["reason"]
    assert roles["challenger"]["canary"]["window"]["samples"] == 10, "tripped within its window"
    assert "out of the canary" in client.get("/").get_data(as_text=True)


def test_a_slow_challenger_is_taken_out_of_the_canary_by_latency(both):
    app = both(canary_percent=100.0, guard_window=10, guard_min_answers=5,
               guard_max_latency_ms=20.0)
    client = app.test_client()
    held = app.extensions["serving.challenger.roles"].challenger.held
    replace_predictor(app, Sleeping(held.model.predictor, 0.05))
    roles = [predict(client, f"client-{i}").headers["X-Model-Role"] for i in range(15)]
    assert roles[:5] == ["challenger"] * 5 and set(roles[5:]) == {"champion"}
    assert "latency" in challenger_of(client)["challenger"]["canary"]["guard"]["reason"]


def test_removing_the_candidate_drops_the_challenger(both, model_root):
    app = both()
    client = app.test_client()
    (model_root / "candidate").unlink()
    app.extensions["serving.challenger.roles"].converge()
    roles = challenger_of(client)
    assert roles["mode"] == "none" and roles["challenger"] is None
    assert predict(client).headers["X-Model-Role"] == "champion"


def test_a_refused_candidate_is_shown_and_the_champion_keeps_serving(make_app, publish,
                                                                       model_root):
    publish("1.0.0")
    broken = model_root.parent / "broken"
    broken.mkdir()
    (broken / "pipeline.skops").write_bytes(b"not a model")
    stage_candidate(model_root, broken)
    client = settle(make_app()).test_client()
    roles = challenger_of(client)
    assert roles["challenger"] is None
    assert roles["challenger_rejection"]["phase"] == "challenger"
    assert predict(client).status_code == 200


def test_promotion_adopts_the_loaded_challenger_without_loading_again(both, model_root):
    app = both()
    roles = app.extensions["serving.challenger.roles"]
    challenger = roles.challenger.held.model
    promoted = build_snapshot(model_root, {CLASSIFIER: _folder_of(model_root, challenger)},
                              "1.1.0", publish=False)
    # The same models under another snapshot id: the registry's item ids and files are equal.
    publish_link(model_root, promoted)
    roles.converge()
    live = roles.champion.live
    assert live.snapshot == promoted and live.version == "1.1.0"
    assert live.predictor is challenger.predictor, "adopted, not loaded a second time"


def _folder_of(root: Path, model) -> Path:
    return root / "snapshots" / model.snapshot / CLASSIFIER


def test_validating_the_challengers_snapshot_answers_from_its_verdict(both):
    """The sidecar's /-/validate before a promotion: the verdict the challenger was loaded on."""
    roles = both().extensions["serving.challenger.roles"]
    challenger = roles.challenger.held.model
    verdict = roles.champion.validate(challenger.snapshot)
    assert verdict.state.value == "accepted" and verdict.version == "1.1.0"


def test_a_challenger_of_another_layout_gets_the_input_in_its_own_encoding(make_app, publish,
                                                                          model_root,
                                                                          trained_models):
    from devkit.snapshots import seed_models

    publish("1.0.0")
    seed = build_snapshot(model_root, seed_models(trained_models.seed), "1.1.0", publish=False)
    publish_link(model_root, seed, link="candidate")
    app = settle(make_app())
    roles = app.extensions["serving.challenger.roles"]
    assert roles.challenger.held.model.schema != roles.champion.live.schema
    client = app.test_client()
    assert {predict(client, f"c{i}").status_code for i in range(10)} == {200}
    total = wait_until(lambda: (t := challenger_of(client)["challenger"]["shadow"]["total"])
                       ["samples"] == 10 and t, timeout=20, what="10 shadow samples")
    assert total["errors"] == 0 and total["compared"] == 10


# --- a hostile challenger in shadow: odd answers, SystemExit, refused inputs, big bodies.
# Whatever it does, the champion answers, /api/v1/model and /metrics stay readable, every
# input is accounted for, and a queued input holds its rows, not its request's body.

MIB = 1024 * 1024


def inner(app):
    """The challenger's own predictor."""
    return app.extensions["serving.challenger.roles"].challenger.held.model.predictor


class Columns:
    """Labels and probabilities as (n, 1) numpy arrays: the right length, the wrong shape."""

    def __init__(self, wrapped):
        self.wrapped = wrapped

    def predict(self, matrix):
        answers = self.wrapped.predict(matrix)
        return replace(answers, labels=np.array(answers.labels, dtype=object)[:, None],
                       probabilities=np.array(answers.probabilities)[:, None])


class NaNs:
    """NaN probabilities while `broken`, its real answers after."""

    def __init__(self, wrapped):
        self.wrapped, self.broken = wrapped, True

    def predict(self, matrix):
        answers = self.wrapped.predict(matrix)
        return replace(answers, probabilities=[float("nan")] * answers.rows) if self.broken \
            else answers


class Float32:
    """1-D numpy answers, probabilities as float32 (what many predict_proba give)."""

    def __init__(self, wrapped):
        self.wrapped = wrapped

    def predict(self, matrix):
        answers = self.wrapped.predict(matrix)
        return replace(answers, labels=np.array(answers.labels, dtype=object),
                       probabilities=np.asarray(answers.probabilities, dtype=np.float32))


# Answers no predictor should give, each built from the real labels and probabilities.
ODD_ANSWERS = {
    "huge probability": lambda labels, probs: classified(labels, [1e308] * len(labels), LABELS),
    "above one": lambda labels, probs: classified(labels, [1.5] * len(labels), LABELS),
    "negative": lambda labels, probs: classified(labels, [-0.25] * len(labels), LABELS),
    "None": lambda labels, probs: None,
    "a pair, not Predictions": lambda labels, probs: (labels, probs),
    "a regressor's answer": lambda labels, probs: regressed(probs),
    "text probabilities": lambda labels, probs: classified(labels, ["high"] * len(labels),
                                                           LABELS),
    "generators": lambda labels, probs: classified(iter(labels), iter(probs), LABELS),
    "huge lists": lambda labels, probs: classified(labels * 100_000, probs * 100_000, LABELS),
}


class Odd:
    """An answer no predictor should give, built from the real one by `shape`."""

    def __init__(self, wrapped, shape):
        self.wrapped, self.shape = wrapped, ODD_ANSWERS[shape]

    def predict(self, matrix):
        answers = self.wrapped.predict(matrix)
        return self.shape(list(answers.labels), list(answers.probabilities))


class ExitsOnce:
    """SystemExit on its first call, once released; its real answers after."""

    def __init__(self, wrapped):
        self.wrapped, self.calls = wrapped, 0
        self.entered, self.release = threading.Event(), threading.Event()

    def predict(self, matrix):
        self.calls += 1
        if self.calls == 1:
            self.entered.set()
            self.release.wait(10)
            raise SystemExit("the model said bye")
        return self.wrapped.predict(matrix)


def readable(client) -> dict:
    """The shadow's totals; /api/v1/model, /metrics and the page must all answer 200."""
    answer = client.get("/api/v1/model")
    assert answer.status_code == 200
    assert client.get("/").status_code == 200
    metrics = client.get("/metrics")
    assert metrics.status_code == 200
    for family in text_string_to_metric_families(metrics.get_data(as_text=True)):
        for sample in family.samples:
            if sample.name == "serving_shadow_probability_gap_total":
                assert math.isfinite(sample.value), sample
    return answer.get_json()["roles"]["challenger"]["shadow"]["total"]


@pytest.mark.parametrize("odd", [Columns, Float32])
def test_numpy_shaped_answers_never_break_the_figures(both, odd):
    app = both()
    replace_predictor(app, odd(inner(app)))
    client = app.test_client()
    assert {predict(client, f"c{i}").status_code for i in range(3)} == {200}
    log = app.extensions["serving.challenger.roles"].tracking().comparisons
    wait_until(lambda: log.figures()[1].samples == 3, timeout=10, what="three samples")
    total = readable(client)
    # float32 answers are plain numbers, compared; (n, 1) columns are the challenger's failure
    assert (total["compared"], total["errors"]) == ((3, 0) if odd is Float32 else (0, 3))


def test_nan_probabilities_count_as_failures_and_leave_the_figures_finite(both):
    app = both()
    nans = NaNs(inner(app))
    replace_predictor(app, nans)
    client = app.test_client()
    assert predict(client, "c0").status_code == 200
    log = app.extensions["serving.challenger.roles"].tracking().comparisons
    wait_until(lambda: log.figures()[1].samples == 1, timeout=10, what="one sample")
    nans.broken = False
    assert {predict(client, f"d{i}").status_code for i in range(5)} == {200}
    wait_until(lambda: log.figures()[1].samples == 6, timeout=10, what="six samples")
    total = readable(client)
    assert (total["errors"], total["compared"]) == (1, 5)
    assert math.isfinite(total["mean_abs_probability_diff"])


@pytest.mark.parametrize("odd", [Columns, NaNs, Float32])
def test_a_canary_client_gets_plain_finite_answers_whatever_the_challenger_returns(both, odd):
    """Columns, NaN: the champion answers, the guard counts an error; float32: plain numbers."""
    app = both(canary_percent=100.0)
    replace_predictor(app, odd(inner(app)))
    client = app.test_client()
    answers = [predict(client, f"c{i}") for i in range(4)]
    assert {a.status_code for a in answers} == {200}
    for answer in answers:
        body = json.loads(answer.get_data(as_text=True), parse_constant=pytest.fail)
        assert body["label"] in ("Gold", "Silver") and 0.5 <= body["probability"] <= 1.0
        assert body["probability"] == round(body["probability"], 6), "rounded as the champion's"
    roles = {a.headers["X-Model-Role"] for a in answers}
    window = challenger_of(client)["challenger"]["canary"]["window"]
    if odd is Float32:
        assert roles == {"challenger"} and window["errors"] == 0
    else:
        assert roles == {"champion"} and window["errors"] == 4


@pytest.mark.parametrize("shape", sorted(ODD_ANSWERS))
def test_a_canary_client_gets_a_probability_between_0_and_1_whatever_the_challenger_gives(
        both, shape):
    """Not a pair of one label and one probability in [0, 1] per row: the champion answers."""
    app = both(canary_percent=100.0)
    replace_predictor(app, Odd(inner(app), shape))
    client = app.test_client()
    answer = predict(client, "c0")
    assert answer.status_code == 200
    body = json.loads(answer.get_data(as_text=True), parse_constant=pytest.fail)
    assert body["label"] in ("Gold", "Silver") and 0.5 <= body["probability"] <= 1.0
    assert answer.headers["X-Model-Role"] == "champion"


def test_a_challenger_raising_systemexit_loses_no_input(both):
    app = both()
    roles = app.extensions["serving.challenger.roles"]
    exits = ExitsOnce(inner(app))
    replace_predictor(app, exits)
    client = app.test_client()
    assert predict(client, "c0").status_code == 200
    assert exits.entered.wait(10)
    assert {predict(client, f"c{i}").status_code for i in range(1, 6)} == {200}
    exits.release.set()
    log = roles.tracking().comparisons
    wait_until(lambda: log.figures()[1].samples == 6, timeout=10, what="six samples")
    assert roles.scorer._scoring.running(), "the scorer thread survives SystemExit"
    assert predict(client, "c6").status_code == 200
    wait_until(lambda: log.figures()[1].samples == 7, timeout=10, what="seven samples")
    total = log.figures()[1]
    assert (total.errors, total.compared, roles.scorer.dropped) == (1, 6, 0)


def test_an_input_the_challengers_schema_refuses_is_not_given_to_it(both):
    app = both()
    roles = app.extensions["serving.challenger.roles"]
    tracking = roles.tracking()
    champion = roles.champion.require()
    matrix = parse_body(VALID, champion.schema, 1)[0]
    answer = Answer(Role.CHAMPION, champion, champion.predictor.predict(matrix))

    def refuse(schema):
        raise InvalidInput([])

    other = dataclasses.replace(champion.schema, classes=("x", "y"))
    for i in range(10):
        roles.shadow(answer, ModelInput(matrix, champion.schema, lambda schema: matrix))
        if i == 5:
            roles.shadow(answer, ModelInput(matrix, other, refuse))
    wait_until(lambda: tracking.comparisons.figures()[1].samples == 10, timeout=10,
               what="ten samples")
    total = tracking.comparisons.figures()[1]
    assert (total.errors, total.compared) == (0, 10)


def test_queued_inputs_do_not_keep_their_request_bodies(both):
    app = both()
    held = Held(inner(app))  # the challenger is stuck: inputs queue up
    replace_predictor(app, held)
    client = app.test_client()
    row = json.dumps(VALID).encode()
    client.post("/api/v1/predict", data=row, content_type="application/json",
                headers={KEY_HEADER: "warm"}, buffered=True)
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        for i in range(20):  # one row each, padded with JSON whitespace to 2 MiB
            body = row + b" " * (2 * MIB - len(row) - i)
            assert client.post("/api/v1/predict", data=body, content_type="application/json",
                               headers={KEY_HEADER: f"c{i}"}, buffered=True).status_code == 200
            del body
        gc.collect()  # a request's objects hold cycles: only what stays reachable counts
        kept = tracemalloc.get_traced_memory()[0] - base
    finally:
        held.release.set()
        tracemalloc.stop()
    assert kept < 4 * MIB, f"{kept / MIB:.1f} MiB kept for 20 queued one-row inputs"
