"""Benchmark verdicts: met only when measured, failures replace old sections, stale ones flagged.

And the peers part sends every server the same rows.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

import bench.__main__ as bench_main
from bench import report, verdicts
from bench.common import VALID
from bench.probe import gaps

MACHINE = {"cores": 2, "cpu": "cpu", "memory_gib": 1, "python": "3.11", "os": "linux",
           "load_average": [0.1], "wrk": "wrk", "curl": "curl", "packages": {"x": "1"}}


def _part(section: report.Section, commit: str | None, status: str = "ran") -> dict:
    return {"title": section.title, "date": "2026-01-01T00:00:00Z", "seconds": 1.0,
            "commit": commit, "status": status, "machine": MACHINE,
            "targets": [t.__dict__ for t in section.targets], "tables": section.tables,
            "notes": section.notes}


def test_a_goal_passed_on_no_answers_is_not_met():
    """'0 failed' of a server that answered nothing reads "not met", naming the empty count."""
    section = report.Section("3. Hot swap under load")
    section.target("failed requests during swaps", "0", "0", True,
                   evidence={"answers": 0, "swaps": 4})
    section.target("every worker serves the new version", "4/4", "all", True,
                   evidence={"swaps": 4})
    assert [t.met for t in section.targets] == [False, True]
    page = report.render({"parts": {"swap": _part(section, None)}})
    assert "| failed requests during swaps | 0 | 0 | **not met** (nothing measured: answers = 0)" \
        in page


def test_no_evidence_or_nan_counts_as_nothing_measured():
    """A target with no counts at all, or a NaN count, is not met."""
    assert not verdicts.trusted(True, {})
    assert not verdicts.trusted(True, {"RSS samples": float("nan")})
    assert verdicts.trusted(True, {"RSS samples": 12})
    assert not verdicts.trusted(False, {"RSS samples": 12})


@pytest.fixture
def results(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """report writes its two files in tmp_path; an earlier "met" batch section is there."""
    monkeypatch.setattr(report, "RESULTS_JSON", tmp_path / "results.json")
    monkeypatch.setattr(report, "RESULTS_MD", tmp_path / "results.md")
    old = report.Section("2. Batch throughput (1000 rows per request)")
    old.target("overhead on the served model", "12%", "<= 50%", True, evidence={"answers": 400})
    report.write({"parts": {"batch": _part(old, "0" * 40)}})
    return tmp_path


def test_a_failing_part_replaces_its_old_section(results: Path, monkeypatch):
    """The part raises: the run exits 1 and its section says "failed", the old verdict gone."""
    import bench.batch

    def broken(work: Path) -> report.Section:
        raise RuntimeError("serving /readyz: the process exited with 3")

    monkeypatch.setattr(bench.batch, "run", broken)
    monkeypatch.setattr(report, "machine", lambda: MACHINE)
    assert bench_main.main(["batch"]) == 1
    part = json.loads((results / "results.json").read_text())["parts"]["batch"]
    assert part["status"] == "failed"
    assert [t["met"] for t in part["targets"]] == [False]
    assert "the process exited with 3" in part["targets"][0]["measured"]
    page = (results / "results.md").read_text()
    assert "12%" not in page
    assert "**Failed:**" in page
    assert part["title"] in page


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A git repository standing in for this one: verdicts reads its history."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True,
                              text=True).stdout.strip()

    git("init", "-q")
    git("config", "user.email", "bench@example.invalid")
    git("config", "user.name", "bench")
    monkeypatch.setattr(verdicts, "REPO", tmp_path)
    tmp_path.joinpath("serving").mkdir()
    tmp_path.joinpath("serving", "api.py").write_text("v1\n")
    git("add", ".")
    git("commit", "-qm", "serving v1")
    tmp_path.joinpath("docs.md").write_text("unrelated\n")
    git("add", ".")
    git("commit", "-qm", "docs")
    return tmp_path, git


def test_a_section_older_than_the_code_it_measures_is_stale(repo):
    """Measured before a serving change: stale, and the page says so beside its verdicts."""
    repo, git = repo
    measured = git("rev-parse", "HEAD")
    assert verdicts.staleness("batch", measured) == ""
    repo.joinpath("docs.md").write_text("still unrelated\n")
    git("commit", "-qam", "docs again")
    assert verdicts.staleness("batch", measured) == "", "a change elsewhere is not staleness"
    repo.joinpath("serving", "api.py").write_text("v2\n")
    git("commit", "-qam", "serving v2")
    why = verdicts.staleness("batch", measured)
    assert why.startswith(f"measured on {measured[:10]}")
    assert verdicts.staleness("batch", git("rev-parse", "HEAD")) == ""
    section = report.Section("2. Batch")
    section.target("overhead", "12%", "<= 50%", True, evidence={"answers": 1})
    page = report.render({"parts": {"batch": _part(section, measured)}})
    assert "| 2. Batch | overhead | 12% | <= 50% | met — **stale** |" in page
    assert f"**Stale:** {why}" in page


def test_a_section_without_a_commit_is_stale(repo):
    """Sections written before commits were recorded cannot be trusted to match the code."""
    assert "names no commit" in verdicts.staleness("batch", None)


def test_the_longest_gap_counts_the_window_edges():
    """A stall at the start or end of the window is a gap too, not only between answers."""
    assert gaps(0.0, [1.0, 1.5, 4.5], 5.0) == pytest.approx(3000)
    assert gaps(0.0, [], 2.0) == pytest.approx(2000)
    assert gaps(0.0, [0.1, 0.2], 9.0) == pytest.approx(8800)


def test_every_server_gets_the_same_rows():
    """Ours gets the rows as named fields; each peer the same rows encoded, as V2 FP64 tensors."""
    import numpy as np

    from bench.peers import bodies
    from serving.inputs.checks import encode
    from serving.inputs.schema import DIAMONDS

    rows = [{**VALID, "carat": 0.31 + i / 100} for i in range(5)]
    sent = bodies(rows)
    assert json.loads(sent["ours"]["batch"]) == {"instances": rows}
    for peer in ("mlserver", "kserve"):
        tensor = json.loads(sent[peer]["batch"])["inputs"][0]
        assert (tensor["datatype"], tensor["shape"]) == ("FP64", [5, len(DIAMONDS.features)])
        matrix = np.array(tensor["data"]).reshape(tensor["shape"])
        assert np.array_equal(matrix, encode(DIAMONDS, rows, single=False))
    assert json.loads(sent["mlserver"]["single"])["outputs"] == [{"name": "predict_proba"}]
    assert "outputs" not in json.loads(sent["kserve"]["single"])
