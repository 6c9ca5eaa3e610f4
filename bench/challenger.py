"""Part 11: the cost of a challenger on predictions: none, shadow, canary 20%.

Three servings (2 sync workers, our layout, the same champion) run at once: without a
challenger; with a Staging challenger in shadow; with the challenger answering a sticky 20% of
clients (each request carries a random client id). They are measured in interleaved rounds with
wrk; each p99 ratio is taken within a round, then the median.
"""

from __future__ import annotations

import json
from pathlib import Path

import requests

from devkit.snapshots import build_snapshot
from registry_sync.store.publish import publish as publish_link

from . import models
from .common import VALID, Processes, answered, median, wrk
from .report import Section
from .servers import serving

ROUNDS = 3
SECONDS = 5
CONNECTIONS = 8
KEY_HEADER = "X-Client-Id"
RUNS = {"none": "no challenger", "shadow": "challenger in shadow",
        "canary": "canary 20% (sticky per client id)"}
# A new client id per request, so the share is drawn over many clients.
RANDOM_CLIENT = ("request = function()\n"
                 f'  wrk.headers["{KEY_HEADER}"] = tostring(math.random(1, 1000000000))\n'
                 "  return wrk.format()\nend\n")


def _roots(work: Path) -> dict[str, Path]:
    """A MODEL_ROOT per run: the same champion; a `candidate` for shadow and canary."""
    trained = models.trained()
    roots = {}
    for name in RUNS:
        root = roots[name] = work / f"root-{name}"
        build_snapshot(root, {models.CLASSIFIER: trained.pipeline}, "1.0.0")
        if name != "none":
            candidate = build_snapshot(root, {models.CLASSIFIER: trained.alternative}, "1.1.0",
                                       publish=False)
            publish_link(root, candidate, link="candidate")
    return roots


def _answers(url: str, role: str) -> float:
    """Requests a role answered, from serving's /metrics (all workers)."""
    text = requests.get(url + "/metrics", timeout=10).text
    prefix = f'serving_role_answers_total{{role="{role}",'
    return sum(float(line.rpartition(" ")[2]) for line in text.splitlines()
               if line.startswith(prefix))


def run(work: Path) -> Section:
    """p99 and throughput of single JSON predictions with no challenger, shadow, canary 20%."""
    section = Section("11. Champion and challenger: cost of shadow and canary")
    body = json.dumps(VALID)
    rounds: list[dict[str, dict]] = []
    with Processes(work) as processes:
        roots = _roots(work)
        servers = {name: serving(processes, f"challenger-{name}", roots[name],
                                 CANARY_KEY_HEADER=KEY_HEADER,
                                 CANARY_PERCENT="20" if name == "canary" else "0")
                   for name in RUNS}
        for _ in range(ROUNDS):
            rounds.append({name: wrk(server.url + "/api/v1/predict", SECONDS, CONNECTIONS, body,
                                     work, RANDOM_CLIENT) for name, server in servers.items()})
        canary = servers["canary"].extra["admin"]  # /metrics: admin port only
        share = _answers(canary, "challenger") / max(1.0, _answers(canary, "champion") +
                                                     _answers(canary, "challenger"))
        shadow = requests.get(servers["shadow"].url + "/api/v1/model", timeout=10).json()
    figures = shadow["roles"]["challenger"]["all_workers"]
    dropped = shadow["roles"]["challenger"]["shadow"]["dropped"]
    ratio = median([r["shadow"]["p99_ms"] / r["none"]["p99_ms"] for r in rounds])
    failed = sum(r[name]["non_2xx"] + r[name]["socket_errors"] for r in rounds for name in RUNS)
    section.table(f"wrk, {CONNECTIONS} connections, {SECONDS} s per run, {ROUNDS} interleaved "
                  "rounds (medians)", ["run", "requests/s", "p50 ms", "p99 ms"],
                  [[label, round(median([r[name]["rps"] for r in rounds])),
                    round(median([r[name]["p50_ms"] for r in rounds]), 2),
                    round(median([r[name]["p99_ms"] for r in rounds]), 2)]
                   for name, label in RUNS.items()])
    answered = {name: answered(r[name] for r in rounds) for name in RUNS}
    section.target("champion p99 with a shadow challenger / without", f"{ratio:.2f}x",
                   "<= 1.2x", ratio <= 1.2,
                   evidence={"answers without": answered["none"],
                             "answers with shadow": answered["shadow"],
                             "inputs compared": figures["compared"]})
    section.target("share answered by the challenger at CANARY_PERCENT=20", f"{share:.1%}",
                   "20% +- 3%", abs(share - 0.2) <= 0.03,
                   evidence={"canary answers": answered["canary"]})
    section.target("failed predictions (all runs)", str(failed), "0", failed == 0,
                   evidence={"answers": sum(answered.values())})
    section.notes.append(
        f"Shadow run: {figures['compared']:,} inputs compared on all workers, agreement "
        f"{(figures['agreement'] or 0):.1%}, mean |probability difference| "
        f"{(figures['mean_abs_probability_diff'] or 0):.3f}; one worker dropped {dropped} "
        "inputs when its challenger queue was full (the answer never waits for it). The "
        "challenger scores after the answer is sent, on its own thread (nice 10, what queued "
        "in one call), so it shares the worker's core: its cost shows as throughput, the p99 "
        "ratio is the goal. Every request "
        "sends the same instance, so the agreement says nothing about the models.")
    section.figures.update(rounds=rounds, ratio=ratio, share=share, shadow=figures)
    return section
