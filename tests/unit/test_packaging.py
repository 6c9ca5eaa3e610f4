"""The package's metadata: the Python range its dependencies allow, and its type information."""

from __future__ import annotations

import tomllib
from importlib import metadata

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

from devkit.processes import REPO_ROOT

PROJECT = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
OURS = "comet-registry-sync"
PACKAGES = ("model_contract", "registry_sync", "serving", "local_registry")
PYTHONS = [f"3.{minor}" for minor in range(8, 16)]


def direct_requirements() -> list[Requirement]:
    """Every direct dependency of every extra, ours (self-references) left out."""
    extras = PROJECT["project"]["optional-dependencies"].values()
    found = [Requirement(text) for texts in extras for text in texts]
    return [r for r in found if r.name != OURS]


FLOOR = "3.11"  # the oldest Python the suite and the images (python:3.11-slim) run


def allowed_by_dependencies(python: str) -> bool:
    """True when every installed direct dependency declares it runs on this Python."""
    for requirement in direct_requirements():
        try:
            declared = metadata.metadata(requirement.name).get("Requires-Python") or ""
        except metadata.PackageNotFoundError:  # an extra this venv lacks (make min-deps)
            continue
        if python not in SpecifierSet(declared):
            return False
    return True


@pytest.mark.parametrize("python", PYTHONS)
def test_requires_python_is_the_range_the_dependencies_allow(python):
    """From the floor we test, every Python the dependencies allow: no cap they do not impose
    (3.12 and 3.13 were refused)."""
    ours = SpecifierSet(PROJECT["project"]["requires-python"])
    expected = SpecifierSet(f">={FLOOR}").contains(python) and allowed_by_dependencies(python)
    assert (python in ours) == expected, (python, str(ours))


@pytest.mark.parametrize("package", PACKAGES)
def test_each_package_ships_its_py_typed_marker(package):
    """PEP 561: the marker exists and the wheel carries it (package-data)."""
    assert (REPO_ROOT / package / "py.typed").is_file()
    assert "py.typed" in PROJECT["tool"]["setuptools"]["package-data"].get(package, [])
