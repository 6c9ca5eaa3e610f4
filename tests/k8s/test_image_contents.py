"""Each image carries only what it runs: its packages' imports, resolved from its extra alone.

The closure of an extra is read from the installed distributions' metadata (what pip would
install with docker/constraints.txt, which pins exactly this venv), so no network is needed.
"""

from __future__ import annotations

import ast
import importlib.util
import sys
from importlib import metadata

import pytest
from packaging.utils import canonicalize_name

from devkit.processes import REPO_ROOT

sys.path.insert(0, str(REPO_ROOT / "docker"))
import pin_constraints  # docker/ is not a package: found through the path above

PACKAGES = {"sidecar": ("model_contract", "common", "registry_sync"),
            "serving": ("model_contract", "common", "serving")}
EXTRAS = {"sidecar": ("sidecar", "s3", "gcs"), "serving": ("serving",)}  # as the Dockerfiles say
NEVER_IN = {"sidecar": {"flask", "werkzeug", "scikit-learn", "numpy", "scipy", "gunicorn",
                        "granian", "skops", "pandas"},
            "serving": {"kubernetes", "tenacity", "comet-ml", "gunicorn", "gevent"}}
# Allowed in an image only as what one of its direct requirements needs, never for our own code:
# (pandas is serving's own since own models: frames.py builds the model's DataFrame)
ONLY_THROUGH = {"serving": {"comet-mpm": {"requests"}}}
# `registry-sync describe` imports serving lazily, with the serving extra on a developer's
# machine; the sidecar image never runs it (tests/unit/test_boundaries.py names the debt):
RUN_FROM_A_CHECKOUT = {"registry_sync/describe.py"}
OURS = {"model_contract", "common", "registry_sync", "serving", "local_registry", "devkit", "tests",
        "bench"}
# Imported inside a function, on paths the image never takes:
NOT_IN_THE_IMAGE = {
    "comet_ml",  # `registry-sync register` against Comet itself needs the [comet] extra
}


def _imported(path) -> list[str]:
    """The absolute modules one file imports, lazy included."""
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names += [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
    return names


def sources_of(image: str, package: str) -> list:
    """A package's files in the image; of common/, only the modules the image's code imports
    (common is shared: the local registry's semver ordering is never run by serving)."""
    if package != "common":
        return sorted((REPO_ROOT / package).rglob("*.py"))
    used = {name for own in PACKAGES[image] if own != "common"
            for path in sources_of(image, own) for name in _imported(path)}
    return sorted(path for path in (REPO_ROOT / "common").rglob("*.py")
                  if f"common.{path.stem}" in used or path.stem == "__init__")


def imports_of(image: str, package: str) -> dict[str, set[str]]:
    """{top-level module imported: {files importing it}} over a package's sources, lazy included."""
    found: dict[str, set[str]] = {}
    for path in sources_of(image, package):
        for name in _imported(path):
            found.setdefault(name.split(".")[0], set()).add(str(path.relative_to(REPO_ROOT)))
    return found


def third_party(modules: dict[str, set[str]]) -> dict[str, set[str]]:
    """The modules that are neither the standard library nor ours."""
    return {m: files for m, files in modules.items()
            if m not in sys.stdlib_module_names and m not in OURS}


def closure_of(image: str, without: str = "") -> set[str]:
    """The canonical names of every distribution the image's extra installs (less one of its
    direct requirements and what only that one pulls in)."""
    requirements = [r for r in pin_constraints.project_requirements(EXTRAS[image])
                    if canonicalize_name(r.name) != without]
    return set(pin_constraints.installed_closure(requirements))


@pytest.mark.parametrize("image", PACKAGES)
def test_the_images_packages_import_nothing_of_the_other_side(image):
    """Serving never imports the sidecar or the local registry; the sidecar neither of them."""
    other = {"registry_sync", "serving", "local_registry", "devkit"} - set(PACKAGES[image])
    for package in PACKAGES[image]:
        crossing = {m: sorted(f - RUN_FROM_A_CHECKOUT) for m, f in
                    imports_of(image, package).items() if m in other and f - RUN_FROM_A_CHECKOUT}
        assert not crossing, f"{package} imports {crossing}"


@pytest.mark.parametrize("image", PACKAGES)
def test_the_extra_provides_every_import_and_nothing_the_image_does_not_run(image):
    """Each third-party module imported is installed by the image's extra; the others are not."""
    closure = closure_of(image)
    providers = metadata.packages_distributions()
    for package in PACKAGES[image]:
        for module, files in third_party(imports_of(image, package)).items():
            if module in NOT_IN_THE_IMAGE:
                continue
            assert importlib.util.find_spec(module), f"{module} is not installed"
            dists = {canonicalize_name(d) for d in providers.get(module, [])}
            assert dists & closure, f"{module} ({sorted(files)}) is not in the [{image}] extra"
    assert not closure & NEVER_IN[image], sorted(closure & NEVER_IN[image])
    for requirement, brought in ONLY_THROUGH.get(image, {}).items():
        assert not closure_of(image, without=requirement) & brought, (
            f"{sorted(brought)} are in [{image}] for more than {requirement}")
