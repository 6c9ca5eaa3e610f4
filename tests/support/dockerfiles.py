"""The project's Dockerfiles as the tests read them: each stage's instructions."""

from __future__ import annotations

from pathlib import Path

from tests.support.pod import REPO_ROOT

DOCKERFILES = {"sidecar": REPO_ROOT / "docker" / "Dockerfile.sidecar",
               "serving": REPO_ROOT / "docker" / "Dockerfile.serving"}


def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    logical, pending = [], ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    return [(text.split(None, 1)[0].upper(), text.split(None, 1)[1]) for text in logical]


def stages(path: Path) -> list[list[tuple[str, str]]]:
    """The instructions of each build stage, FROM first."""
    found: list[list[tuple[str, str]]] = []
    for instruction in instructions(path):
        if instruction[0] == "FROM":
            found.append([])
        if found:
            found[-1].append(instruction)
    return found
