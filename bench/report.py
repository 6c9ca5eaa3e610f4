"""The results: one JSON file (the data) and its Markdown rendering (what people read).

Each part writes its own section, so running one part alone updates it and keeps the others'
figures, each with the date, machine and commit of its own run. A part that fails replaces its
section with one that says so; a section older than the code it measures is flagged as stale.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import time
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from . import verdicts
from .common import wrk_version

HERE = Path(__file__).resolve().parent
RESULTS_JSON = HERE / "results.json"
RESULTS_MD = HERE / "results.md"
PACKAGES = ("flask", "werkzeug", "gunicorn", "numpy", "scipy", "scikit-learn", "skops",
            "orjson", "pandas", "requests", "prometheus-client", "psutil", "py-spy")


@dataclass
class Target:
    """A goal of the issue: what was measured against what was asked."""

    name: str
    measured: str
    goal: str
    met: bool
    # the counts the measurement rests on (answers, samples, rounds): all must be above zero
    evidence: dict[str, float] = field(default_factory=dict)


@dataclass
class Section:
    """What one part found: targets, tables of figures, and notes in Markdown."""

    title: str
    targets: list[Target] = field(default_factory=list)
    tables: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)

    def table(self, caption: str, columns: list[str], rows: list[list[Any]]) -> None:
        """Add a table of figures."""
        self.tables.append({"caption": caption, "columns": columns, "rows": rows})

    def target(self, name: str, measured: str, goal: str, met: bool, *,
               evidence: dict[str, float]) -> None:
        """Add a target: met only if the goal was met and every count of evidence is above 0."""
        counts = {key: float(value) for key, value in evidence.items()}
        self.targets.append(Target(name, measured, goal, verdicts.trusted(met, counts), counts))


def machine() -> dict[str, Any]:
    """Cores, CPU, Python, OS, package and tool versions, load when measured."""
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    curl = subprocess.run(["curl", "--version"], capture_output=True, text=True, check=False)
    return {"cores": os.cpu_count(), "cpu": cpu, "python": platform.python_version(),
            "os": platform.platform(), "load_average": [round(x, 2) for x in os.getloadavg()],
            "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30,
                                1),
            "packages": versions, "wrk": wrk_version(),
            "curl": (curl.stdout.splitlines() or ["missing"])[0]}


def load() -> dict[str, Any]:
    """The results written so far (empty when none)."""
    if RESULTS_JSON.exists():
        return json.loads(RESULTS_JSON.read_text(encoding="utf-8"))
    return {"parts": {}}


def save(name: str, section: Section, seconds: float, order: list[str]) -> None:
    """Record one part's section (with date, machine, commit) and rewrite both files."""
    results = load()
    results.setdefault("parts", {})[name] = {
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "seconds": round(seconds, 1),
        "commit": verdicts.head_commit(), "status": "ran", "machine": machine(),
        **asdict(section)}
    results["parts"] = {k: results["parts"][k] for k in order if k in results["parts"]}
    write(results)


def save_failure(name: str, error: str, seconds: float, order: list[str]) -> None:
    """Replace a part's section with one saying it failed (its old figures are dropped)."""
    old = load().get("parts", {}).get(name, {})
    section = Section(old.get("title", name))
    section.target("the part ran to the end", f"failed: {error}"[:300], "no error", False,
                   evidence={"runs": 0})
    section.notes.append("**This part failed** (it raised before writing its figures): its "
                         "earlier figures were removed, as they no longer describe the code. "
                         f"The error: `{error[:500]}`")
    save(name, section, seconds, order)
    results = load()
    results["parts"][name]["status"] = "failed"
    write(results)


def write(results: dict[str, Any]) -> None:
    """Write the data and its Markdown rendering."""
    RESULTS_JSON.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    RESULTS_MD.write_text(render(results), encoding="utf-8")


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.3g}" if abs(value) < 100 else f"{value:,.0f}"
    return str(value)


def _table(columns: list[str], rows: list[list[Any]]) -> list[str]:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return lines


def _machine_line(info: dict[str, Any]) -> str:
    packages = ", ".join(f"{k} {v}" for k, v in info["packages"].items())
    return (f"{info['cores']} cores ({info['cpu']}), {info['memory_gib']} GiB, Python "
            f"{info['python']}, {info['os']}; load average at the end "
            f"{info['load_average']}; {info['wrk']}; {info['curl']}; {packages}")


def _loaded(info: dict[str, Any]) -> str:
    """A warning when other work shared the machine (load average above its core count)."""
    load, cores = max(info["load_average"]), info["cores"] or 1
    if load <= cores:
        return ""
    return (f"**Loaded machine:** the load average reached {load:g} on {cores} cores while this "
            "part ran (other work shared it): absolute figures are low and noisy; compare the "
            "ratios taken side by side in this run, and re-run on a quiet machine.")


def _verdict(target: dict[str, Any], stale: str) -> str:
    """A target's verdict cell: met, not met (and why, if nothing was measured), stale."""
    empty = verdicts.missing(target.get("evidence", {}))
    text = "met" if target["met"] else "**not met**"
    if empty:
        text += " (nothing measured: " + ", ".join(f"{k} = 0" for k in empty) + ")"
    elif "evidence" not in target:
        text += " (unchecked: run before verdicts recorded what they rest on)"
    return text + (" — **stale**" if stale else "")


def _heading(name: str, part: dict[str, Any], stale: str) -> list[str]:
    """The lines under a section's title: date, commit, machine, and the flags it needs."""
    commit = part.get("commit") or "unknown"
    lines = [f"Run {part['date']}, {part['seconds']} s, on commit {commit}. Machine: "
             + _machine_line(part["machine"]), ""]
    if part.get("status") == "failed":
        lines += ["**Failed:** this part raised before it measured anything; see below.", ""]
    if stale:
        lines += [f"**Stale:** {stale}; re-run `python -m bench {name}`.", ""]
    return lines


def render(results: dict[str, Any]) -> str:
    """The Markdown page of all parts."""
    parts = results["parts"]
    stale = {name: verdicts.staleness(name, part.get("commit")) for name, part in parts.items()}
    lines = ["# Benchmark results", "",
             "Written by `python -m bench` (see the [README](../README.md)); every figure below "
             "comes from that run, on the machine named in each section. The machine is shared "
             "and noisy: comparisons are ratios measured side by side in the same run, medians "
             "over rounds.", "", "## Targets", ""]
    rows = [[part["title"], t["name"], t["measured"], t["goal"], _verdict(t, stale[name])]
            for name, part in parts.items() for t in part["targets"]]
    lines += _table(["part", "target", "measured", "goal", ""], rows)
    for name, part in parts.items():
        lines += ["", f"## {part['title']}", "", *_heading(name, part, stale[name])]
        loaded = _loaded(part["machine"])
        if loaded:
            lines += [loaded, ""]
        for table in part["tables"]:
            lines += [f"**{table['caption']}**", ""]
            lines += _table(table["columns"], table["rows"])
            lines.append("")
        for note in part["notes"]:
            lines += [note, ""]
    return "\n".join(lines).rstrip() + "\n"
