"""Part 13: the servers users would pick instead, side by side: MLServer, KServe, and ours.

The same fitted diamonds pipeline (ours loads pipeline.skops; the peers the same object saved
with joblib, as their scikit-learn runtimes load it) and the same rows: ours gets them as
/api/v1/predict JSON (named fields, categories as text, validated), the peers as V2 (Open
Inference Protocol) JSON tensors of the already-encoded float matrix, asking for predict_proba.
wrk loads each in interleaved rounds, single predictions then 1000-row batches. Each peer runs in
its own venv (`make peers`); a peer that is not installed is recorded as such, not skipped
silently.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import joblib
import psutil
import requests

from devkit.processes import free_port
from devkit.snapshots import build_snapshot
from serving import dataset
from serving.schema import DIAMONDS
from serving.validation import encode

from . import models
from .common import REPO_ROOT, VALID, Process, Processes, answered, env, median, mib, wrk
from .report import Section
from .servers import _listening, serving

PEERS_VENV = REPO_ROOT / ".venv-peers"
NAME = "diamonds"
ROWS = 1000
ROUNDS = 3
SECONDS = 5
CONNECTIONS = {"single": 8, "batch": 4}
LABELS = {"ours": "ours as deployed (granian front, 2 workers), POST /api/v1/predict",
          "mlserver": "MLServer + mlserver-sklearn (defaults: 1 inference worker), V2 infer",
          "mlserver-2": "MLServer + mlserver-sklearn, parallel_workers=2, V2 infer",
          "kserve": "KServe ModelServer (defaults: 1 worker) + sklearn model, V2 infer",
          "kserve-2": "KServe ModelServer, workers=2, + sklearn model, V2 infer"}


def _python(peer: str) -> Path:
    return PEERS_VENV / peer / "bin" / "python"


def version(peer: str, package: str) -> str:
    """The version of a package in a peer's venv ("not installed" when the venv is missing)."""
    if not _python(peer).exists():
        return "not installed"
    done = subprocess.run([str(_python(peer)), "-c", f"from importlib import metadata; "
                           f"print(metadata.version('{package}'))"], capture_output=True,
                          text=True, timeout=60, check=False)
    return done.stdout.strip() or f"not installed ({done.stderr.strip()[-200:]})"


def _mlserver(processes: Processes, work: Path, model: Path, workers: int) -> Process:
    """`mlserver start` on a folder holding the joblib model and its settings, on loopback."""
    folder = work / f"mlserver-{workers}"
    (folder / NAME).mkdir(parents=True)
    port = free_port()
    (folder / "settings.json").write_text(json.dumps({
        "host": "127.0.0.1", "http_port": port, "grpc_port": free_port(),
        "metrics_port": free_port(), "metrics_endpoint": None, "debug": False,
        "parallel_workers": workers}))
    (folder / NAME / "model-settings.json").write_text(json.dumps({
        "name": NAME, "implementation": "mlserver_sklearn.SKLearnModel",
        "parameters": {"uri": str(model), "version": "v1"}}))
    argv = [str(PEERS_VENV / "mlserver" / "bin" / "mlserver"), "start", str(folder)]
    return _listening(processes, f"mlserver-{workers}", argv, env(), port,
                      f"/v2/models/{NAME}/ready")


def _kserve(processes: Processes, work: Path, model: Path, workers: int) -> Process:
    """KServe's ModelServer with bench/peer_servers/kserve_sklearn.py, on loopback."""
    port = free_port()
    script = REPO_ROOT / "bench" / "peer_servers" / "kserve_sklearn.py"
    argv = [str(_python("kserve")), str(script), str(model), NAME, str(port), str(workers)]
    return _listening(processes, f"kserve-{workers}", argv, env(), port,
                      f"/v2/models/{NAME}/ready")


def bodies(rows: list[dict]) -> dict[str, dict[str, str]]:
    """The single and batch bodies: ours (named JSON) and each peer's (V2 tensors).

    MLServer's runtime answers predict() unless asked for predict_proba by name; KServe's model
    answers predict_proba and refuses an output it does not name itself.
    """
    def v2(chosen: list[dict], outputs: list[dict]) -> str:
        matrix = encode(DIAMONDS, chosen, single=False)
        tensor = {"name": "input-0", "shape": list(matrix.shape), "datatype": "FP64",
                  "data": matrix.ravel().tolist()}
        return json.dumps({"inputs": [tensor], **({"outputs": outputs} if outputs else {})})
    proba = [{"name": "predict_proba"}]
    return {"ours": {"single": json.dumps(VALID), "batch": json.dumps({"instances": rows})},
            "mlserver": {"single": v2([VALID], proba), "batch": v2(rows, proba)},
            "kserve": {"single": v2([VALID], []), "batch": v2(rows, [])}}


def _check(server: Process, path: str, body: str) -> None:
    """One request must answer 200 before the server is measured (or the part fails, saying so)."""
    answer = requests.post(server.url + path, data=body, timeout=60,
                           headers={"Content-Type": "application/json"})
    if answer.status_code != 200:
        raise RuntimeError(f"{server.name} answered {answer.status_code}: {answer.text[:300]}")


def _pss(server: Process) -> float:
    """PSS of every process of a server (its workers included)."""
    total = 0
    for proc in server.family():
        try:
            total += proc.memory_full_info().pss
        except psutil.Error:
            continue
    return total


def _start(processes: Processes, work: Path) -> tuple[dict[str, Process], dict[str, str]]:
    """Ours and every installed peer, the same fitted pipeline in each; why any peer is absent."""
    trained = models.trained()
    root = work / "root"
    build_snapshot(root, {models.CLASSIFIER: trained.pipeline}, "1.0.0")
    import skops.io  # our own freshly trained pipeline: its types are trusted

    pipeline = trained.pipeline / "pipeline.skops"
    model = work / "model.joblib"
    joblib.dump(skops.io.load(pipeline, trusted=skops.io.get_untrusted_types(file=pipeline)),
                model)
    servers = {"ours": serving(processes, "serving", root)}
    absent = {}
    for peer, start in (("mlserver", _mlserver), ("kserve", _kserve)):
        if not _python(peer).exists():
            absent[peer] = f"{PEERS_VENV / peer} is missing: run `make peers`"
            continue
        servers[peer] = start(processes, work, model, 1)
        servers[f"{peer}-2"] = start(processes, work, model, 2)
    return servers, absent


def _kind(name: str) -> str:
    """"ours", "mlserver" or "kserve", whatever the worker count."""
    return name.split("-")[0]


def _path(name: str) -> str:
    return "/api/v1/predict" if name == "ours" else f"/v2/models/{NAME}/infer"


def _measure(servers: dict[str, Process], payloads: dict, work: Path) -> dict:
    """Interleaved rounds: every server, single then batch, one wrk run each."""
    runs = {kind: {name: [] for name in servers} for kind in CONNECTIONS}
    for _ in range(ROUNDS):
        for kind, connections in CONNECTIONS.items():
            for name, server in servers.items():
                runs[kind][name].append(wrk(server.url + _path(name), SECONDS, connections,
                                            payloads[_kind(name)][kind], work))
    return runs


def run(work: Path) -> Section:
    """Start every server, check each answers, measure, judge ours against each peer."""
    section = Section("13. Peers: MLServer and KServe, side by side")
    rows = dataset.read()[0][:ROWS]
    payloads = bodies(rows)
    with Processes(work) as processes:
        servers, absent = _start(processes, work)
        for name, server in servers.items():
            for kind in CONNECTIONS:
                _check(server, _path(name), payloads[_kind(name)][kind])
        memory = {name: _pss(server) for name, server in servers.items()}
        runs = _measure(servers, payloads, work)
        memory_after = {name: _pss(server) for name, server in servers.items()}
    _report(section, runs, memory, memory_after, absent)
    return section


def _ratio(runs: dict, a: str, b: str, key: str) -> float:
    return median([x[key] / y[key] for x, y in zip(runs[a], runs[b], strict=True)])


def _report(section: Section, runs: dict, memory: dict, after: dict, absent: dict) -> None:
    """Tables of both loads and memory, targets against each peer, versions and absences."""
    for kind, unit in (("single", "predictions/s"), ("batch", "requests/s (x1000 rows)")):
        section.table(f"{kind}: wrk, {CONNECTIONS[kind]} connections, {SECONDS} s x {ROUNDS} "
                      "interleaved rounds (medians)",
                      ["server", unit, "p50 ms", "p99 ms", "ours / it (throughput)",
                       "its p99 / ours", "failed"],
                      [[LABELS[name], median([r["rps"] for r in got]),
                        median([r["p50_ms"] for r in got]), median([r["p99_ms"] for r in got]),
                        f"{_ratio(runs[kind], 'ours', name, 'rps'):.2f}x",
                        f"{_ratio(runs[kind], name, 'ours', 'p99_ms'):.2f}x",
                        sum(r["non_2xx"] + r["socket_errors"] for r in got)]
                       for name, got in runs[kind].items()])
    section.table("memory: PSS of every process of the server (MiB), loaded, before and after "
                  "the load", ["server", "PSS MiB, idle", "PSS MiB, after"],
                  [[LABELS[name], mib(memory[name]), mib(after[name])] for name in memory])
    for peer in (name for name in runs["single"] if name != "ours"):
        for kind in CONNECTIONS:
            ratio = _ratio(runs[kind], "ours", peer, "rps")
            section.target(f"{kind} throughput vs {peer} (same run)", f"{ratio:.2f}x", "> 1x",
                           ratio > 1, evidence={"answers, ours": answered(runs[kind]["ours"]),
                                                f"answers, {peer}": answered(runs[kind][peer])})
    ours = runs["single"]["ours"] + runs["batch"]["ours"]
    failed = sum(r["non_2xx"] + r["socket_errors"] for r in ours)
    section.target("failed requests, ours (single and batch loads)", str(failed), "0",
                   failed == 0, evidence={"answers, ours": answered(ours)})
    for peer, why in absent.items():
        section.target(f"measured against {peer}", f"not measured: {why}", "measured", False,
                       evidence={"answers": 0})
    section.figures.update(runs=runs, memory=memory, memory_after=after, absent=absent)
    section.notes.append(_versions_note())
    section.notes.append(NOTE)


def _versions_note() -> str:
    return ("**Versions.** MLServer " + version("mlserver", "mlserver") + ", mlserver-sklearn "
            + version("mlserver", "mlserver-sklearn") + ", its scikit-learn "
            + version("mlserver", "scikit-learn") + "; KServe " + version("kserve", "kserve")
            + ", its scikit-learn " + version("kserve", "scikit-learn") + ".")


NOTE = (
    "**What differs.** Every server answers the same fitted pipeline (scikit-learn's "
    "HistGradientBoostingClassifier, 25 trees) on the same rows. Ours takes the rows as named "
    "JSON fields with categories as text, validates each field and encodes it, then answers a "
    "label and its probability per row through the compiled trees; the peers take the matrix "
    "already encoded as a V2 FP64 tensor (less work for them) and answer predict_proba through "
    "scikit-learn. KServe's sklearnserver is not on PyPI: its server here is KServe's own "
    "ModelServer with the same few lines (bench/peer_servers/kserve_sklearn.py), bound to "
    "loopback, gRPC off. Each runs with its defaults for one pod: MLServer one inference worker "
    "behind its uvicorn process, KServe one worker with its "
    "default per-request access and latency logs; ours two workers (one per core, as "
    "deployed). Each peer also runs with two workers (MLServer's parallel_workers, KServe's "
    "workers), as ours. Memory is PSS, so shared library pages count once across a "
    "server's processes.")
