"""The results: one JSON file (the data) and its Markdown rendering (what people read).

Each part writes its own section, so running one part alone updates it and keeps the others'
figures, each with the date and machine of its own run.
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

    def target(self, name: str, measured: str, goal: str, met: bool) -> None:
        """Add a target and whether it was met."""
        self.targets.append(Target(name, measured, goal, bool(met)))


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
    """Record one part's section (with date and machine) and rewrite both files."""
    results = load()
    results.setdefault("parts", {})[name] = {
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "seconds": round(seconds, 1),
        "machine": machine(), **asdict(section)}
    results["parts"] = {k: results["parts"][k] for k in order if k in results["parts"]}
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


def render(results: dict[str, Any]) -> str:
    """The Markdown page of all parts."""
    parts = results["parts"]
    lines = ["# Benchmark results", "",
             "Written by `python -m bench` (see the [README](../README.md)); every figure below "
             "comes from that run, on the machine named in each section. The machine is shared "
             "and noisy: comparisons are ratios measured side by side in the same run, medians "
             "over rounds.", "", "## Targets", ""]
    rows = [[part["title"], t["name"], t["measured"], t["goal"],
             "met" if t["met"] else "**not met**"]
            for part in parts.values() for t in part["targets"]]
    lines += _table(["part", "target", "measured", "goal", ""], rows)
    for part in parts.values():
        lines += ["", f"## {part['title']}", "",
                  f"Run {part['date']}, {part['seconds']} s. Machine: "
                  + _machine_line(part["machine"]), ""]
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
