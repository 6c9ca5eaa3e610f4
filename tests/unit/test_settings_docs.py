"""The docs agree with the settings both processes declare: each declared once, documented with
its default, nothing documented that is not declared.

Each process declares its settings as rows of a `common.settings.SettingsTable` (the sidecar in
registry_sync/settings.py, serving in serving/config.py). env.example lists every row of both,
in a section per process; the docs' `| Variable | Default | Meaning |` tables list serving's rows
(docs/serving.md, docs/monitoring.md, docs/challenger.md) and the sidecar's guard rows
(docs/monitoring.md). A row naming only patterns (`MPM_*`) points to another table.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from fnmatch import fnmatchcase

import pytest

from common.settings import SettingsTable
from devkit.processes import REPO_ROOT
from registry_sync.settings import SETTINGS as SIDECAR
from serving.config import SETTINGS as SERVING

PROCESSES: dict[str, SettingsTable] = {"registry-sync": SIDECAR, "serving": SERVING}
TABLE_HEAD = "| Variable | Default | Meaning |"
# Every settings table of the docs, by (file, the heading it sits under): whose rows it lists.
TABLES = {("docs/serving.md", "Configuration"): "serving",
          ("docs/monitoring.md", "Comet MPM"): "serving",
          ("docs/challenger.md", "Settings"): "serving",
          ("docs/monitoring.md", "Guarded promotion"): "registry-sync"}
ENV_EXAMPLE = REPO_ROOT / "env.example"
ENV_SECTION = re.compile(r"# --- (registry-sync|serving)\b")
ENV_LINE = re.compile(r"(# )?([A-Z][A-Z0-9_]*)=(.*)")


@dataclass(frozen=True)
class Row:
    """One row of a docs settings table: the variables (or patterns) it names, its default cell."""

    where: str
    names: tuple[str, ...]
    default: str

    @property
    def pointer(self) -> bool:
        """A row of patterns only (`MPM_*`): it sends the reader to another table."""
        return all("*" in name for name in self.names)

    def defaults(self) -> dict[str, str]:
        """Each variable's default cell: `100`, `20` for two variables is split between them."""
        parts = [part.strip() for part in self.default.split(", ")]
        if len(parts) != len(self.names):
            parts = [self.default.strip()] * len(self.names)
        return dict(zip(self.names, parts, strict=True))


def docs_tables() -> Iterator[tuple[tuple[str, str], list[Row]]]:
    """Every `| Variable | Default | Meaning |` table of README.md and docs/, by (file, heading)."""
    for path in [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").glob("*.md"))]:
        lines = path.read_text(encoding="utf-8").splitlines()
        heading = ""
        for number, line in enumerate(lines):
            if line.startswith("#"):
                heading = line.lstrip("#").strip()
            if line.strip() != TABLE_HEAD:
                continue
            where = str(path.relative_to(REPO_ROOT))
            rows = []
            for offset, body in enumerate(lines[number + 2:], number + 3):
                if not body.startswith("|"):
                    break
                cells = [cell.strip() for cell in body.strip().strip("|").split("|")]
                rows.append(Row(f"{where}:{offset}", tuple(re.findall(r"`([A-Z0-9_*]+)`",
                                                                      cells[0])), cells[1]))
            yield (where, heading), rows


def documented(process: str) -> list[Row]:
    """The rows of the process's docs tables."""
    return [row for key, rows in docs_tables() if TABLES.get(key) == process for row in rows]


def env_example() -> dict[str, list[tuple[str, bool, str]]]:
    """env.example's lines NAME=value (active) or # NAME=value, as (name, active, value), by the
    process whose section holds them."""
    sections: dict[str, list[tuple[str, bool, str]]] = {process: [] for process in PROCESSES}
    process = None
    for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines():
        section = ENV_SECTION.match(line)
        if section:
            process = section.group(1)
            continue
        found = ENV_LINE.fullmatch(line)
        if found and process:
            sections[process].append((found.group(2), not found.group(1), found.group(3)))
    return sections


def shown_default(cell: str) -> str | None:
    """The value a default cell states (`1000`), or None when it states none in code (prose:
    *(none)*, unset, empty, a fresh temp dir)."""
    found = re.fullmatch(r"`([^`]*)`", cell)
    return found.group(1) if found else None


def alike(one: str | None, other: str | None) -> bool:
    """The same default ('' and None both mean none)."""
    return (one or None) == (other or None)


def test_every_settings_table_of_the_docs_is_known():
    """A new table must be assigned to its process here, so that the checks below read it."""
    assert {key for key, _ in docs_tables()} == set(TABLES)


@pytest.mark.parametrize("process", ["registry-sync", "serving"])
def test_the_docs_tables_name_only_declared_settings_with_their_defaults(process):
    """A documented variable the process does not declare, or a default that differs from the
    declared one (`1000` against "1000"; prose such as *(none)* for a setting without one)."""
    declared = PROCESSES[process]
    rows = documented(process)
    assert rows, f"no docs table of {process} found"
    for row in rows:
        for name in row.names:
            assert any(fnmatchcase(setting, name) for setting in declared), (
                f"{row.where}: {name} is documented but {process} declares no such setting")
        if row.pointer:
            continue
        for name, cell in row.defaults().items():
            default = declared[name].default or None
            assert shown_default(cell) == default, (
                f"{row.where}: {name}'s default is {cell!r} in the docs, "
                f"{default!r} in the declaration")


def test_every_serving_setting_is_in_a_docs_table():
    """Serving's settings are documented in its tables (the sidecar's in env.example only)."""
    named = {name for row in documented("serving") if not row.pointer for name in row.names}
    assert set(SERVING) - named == set()


@pytest.mark.parametrize("process", ["registry-sync", "serving"])
def test_env_example_lists_every_setting_of_its_process_with_its_default(process):
    """In the process's section, or the other's when both declare it alike (MODEL_ROOT "as
    above"); an active line sets the default (or nothing), a commented one shows it."""
    declared = PROCESSES[process]
    sections = env_example()
    for name, setting in declared.items():
        lines = [line for line in sections[process] if line[0] == name]
        if not lines:
            lines = [line for other, found in sections.items() if other != process
                     for line in found if line[0] == name
                     and alike(PROCESSES[other].get(name, setting).default, setting.default)]
        assert lines, f"{name} of {process} is missing from env.example"
        for _, active, value in lines:
            if setting.default:
                assert value == setting.default, (
                    f"env.example sets {name}={value}, {process} declares {setting.default!r}")
            elif active:
                assert value == "", f"env.example sets {name}={value}: it has no default"


@pytest.mark.parametrize("process", ["registry-sync", "serving"])
def test_env_example_lists_nothing_its_process_does_not_declare(process):
    assert [name for name, _, _ in env_example()[process] if name not in PROCESSES[process]] == []


def test_env_example_leaves_the_images_listen_addresses_alone():
    """`docker run --env-file` with a copy of env.example keeps the images' 0.0.0.0 addresses."""
    lines = ENV_EXAMPLE.read_text().splitlines()
    active = {line.split("=", 1)[0] for line in lines if line and not line.startswith("#")}
    assert not active & {"BIND", "SIDECAR_LISTEN", "MODEL_ROOT", "ADMIN_PORT"}


def test_the_checks_find_what_they_check():
    """Both env.example sections and every docs table are read (so the checks above bite)."""
    sections = env_example()
    assert ("MAX_BATCH", True, "1000") in sections["serving"]
    assert ("SYNC_INTERVAL", True, "10") in sections["registry-sync"]
    serving = {row.names: row for row in documented("serving")}
    assert serving[("MAX_BATCH",)].default == "`1000`"
    assert serving[("GUARD_WINDOW", "GUARD_MIN_ANSWERS")].defaults() == {
        "GUARD_WINDOW": "`100`", "GUARD_MIN_ANSWERS": "`20`"}
    assert ("GUARD_WINDOW",) in {row.names for row in documented("registry-sync")}
