"""The house's walls, read from the sources: who may import whom, and no private reach-ins.

serving and registry_sync never import each other (each ships in its own image); inside serving,
the model and the request checks import no layer above them; the local registry never imports the
sidecar; the benchmarks never import the tests (shared helpers live in devkit/); the sync core
(sync/, store/, cluster/) knows no registry by name, only the Registry protocol; and within
registry_sync no module touches another object's `_private` attribute.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from devkit.processes import REPO_ROOT

NEVER = [  # (package, what it must never import)
    ("serving", "registry_sync"), ("registry_sync", "serving"),
    ("local_registry", "registry_sync"), ("bench", "tests"), ("devkit", "tests"),
    ("common", "registry_sync"), ("common", "serving"), ("common", "local_registry"),
    # inside serving: the model and its inputs know no server, no swap, no challenger, no metrics;
    # the swap, the challenger and telemetry know no HTTP (docs/architecture.md)
    *[(low, f"serving.{high}") for low in ("serving/model", "serving/inputs")
      for high in ("http", "swap", "challenger", "telemetry", "front", "oip")],
    *[(middle, f"serving.{high}") for middle in ("serving/swap", "serving/challenger",
                                                 "serving/telemetry")
      for high in ("http", "front", "oip")],
]
# Known crossings, each with its reason (a debt to pay, not a door): `registry-sync describe`
# builds serving's metadata.json with serving's own code, imported lazily (the serving extra on a
# developer's machine; the sidecar image never runs it). It belongs beside serving, not here.
CROSSINGS = {("registry_sync/describe.py", "serving")}
REGISTRY_NEUTRAL = ["registry_sync/sync", "registry_sync/store", "registry_sync/cluster"]


def sources(folder: str) -> list[Path]:
    """Every Python file under a folder of the repository."""
    return sorted((REPO_ROOT / folder).rglob("*.py"))


def imported(path: Path) -> set[str]:
    """Every module a file imports (lazy imports and relative ones resolved), as dotted names."""
    package = list(path.relative_to(REPO_ROOT).with_suffix("").parts[:-1])
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = package[:len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            found |= {module} | {f"{module}.{alias.name}" for alias in node.names}
    return found


@pytest.mark.parametrize("package,forbidden", NEVER)
def test_a_package_never_imports_across_its_wall(package, forbidden):
    """Lazy imports inside functions count too."""
    crossing = {str(path.relative_to(REPO_ROOT)): sorted(
                    m for m in imported(path) if m == forbidden or m.startswith(forbidden + "."))
                for path in sources(package)}
    assert not {f: m for f, m in crossing.items() if m and (f, forbidden) not in CROSSINGS}


def test_the_import_walk_sees_relative_and_lazy_imports():
    """The walk resolves `from ..x import y` and imports inside functions (so it can fail)."""
    seen = imported(REPO_ROOT / "registry_sync" / "sync" / "syncer.py")
    assert {"registry_sync.registries.protocol", "registry_sync.store.installer"} <= seen
    assert "registry_sync.cluster.member" in imported(REPO_ROOT / "registry_sync" / "commands.py")


def names_in(path: Path) -> set[str]:
    """The identifiers, attributes and imported modules of a file (docstrings and comments
    are prose, not dependencies)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Name):
            names.add(node.id)
        elif isinstance(node, ast.Attribute):
            names.add(node.attr)
        elif isinstance(node, ast.ImportFrom):
            names |= {node.module or "", *(alias.name for alias in node.names)}
        elif isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, (ast.FunctionDef, ast.ClassDef, ast.arg)):
            names.add(getattr(node, "name", None) or getattr(node, "arg", ""))
    return names


@pytest.mark.parametrize("folder", REGISTRY_NEUTRAL)
def test_the_sync_core_names_no_registry(folder):
    """Only the Registry protocol: no Comet client, finder or settings by name."""
    naming = {str(path.relative_to(REPO_ROOT)): sorted(n for n in names_in(path)
                                                      if "comet" in n.lower())
              for path in sources(folder)}
    assert not {f: n for f, n in naming.items() if n}


def private_names(path: Path) -> set[str]:
    """The `_names` a module defines: functions, classes, attributes it assigns, globals."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            names.add(node.attr)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
    return {n for n in names if n.startswith("_") and not n.startswith("__")}


def private_reach_ins(path: Path, others: set[str]) -> list[str]:
    """`obj._name` (obj not self or cls) where _name is another module's private, with its line.

    A module's own privates (another instance of its class) and third-party ones (argparse's
    _SubParsersAction) are not reach-ins between our modules."""
    own = private_names(path)
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if (isinstance(node, ast.Attribute) and node.attr in others - own
                and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))):
            found.append(f"{node.lineno}: .{node.attr}")
    return found


def test_no_module_of_registry_sync_reaches_into_anothers_privates():
    """What another module keeps private stays so: the syncer's methods the follower and the
    challenger use are public (SyncContext), never `syncer._refuse`."""
    files = sources("registry_sync")
    defined = {path: private_names(path) for path in files}
    reaching = {str(path.relative_to(REPO_ROOT)): private_reach_ins(
                    path, set().union(*(d for p, d in defined.items() if p != path)))
                for path in files}
    assert not {f: r for f, r in reaching.items() if r}


def test_the_private_walk_sees_a_reach_in(tmp_path):
    """A mutation of the rule's subject: `syncer._refuse(...)` is found, `self._x` is not."""
    sample = tmp_path / "sample.py"
    sample.write_text("def f(syncer, self):\n    syncer._refuse()\n    self._refuse()\n")
    assert private_reach_ins(sample, {"_refuse"}) == ["2: ._refuse"]
    syncer = REPO_ROOT / "registry_sync" / "sync" / "syncer.py"
    assert {"_hand_over", "_prune", "_remember"} <= private_names(syncer)


def environment_reads(path: Path) -> list[str]:
    """Lines of a file that read os.environ (or os.getenv) with no comment saying why: a write
    (`os.environ[X] = ...`) is not a read; a comment on the line or the one above excuses it."""
    lines = path.read_text(encoding="utf-8").splitlines()
    tree = ast.parse("\n".join(lines))
    writes = {node.lineno for node in ast.walk(tree)
              if isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Store)}
    touching = sorted({node.lineno for node in ast.walk(tree)
                       if isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv")
                       and isinstance(node.value, ast.Name) and node.value.id == "os"} - writes)
    return [f"{number}: {lines[number - 1].strip()}" for number in touching
            if "#" not in lines[number - 1] and not lines[number - 2].lstrip().startswith("#")]


def test_serving_reads_its_settings_only_through_its_config():
    """serving/config.py reads the environment (once, through the settings engine); anywhere
    else in serving, touching os.environ says why (a child's environment being built, the
    folders the master hands its workers, the validator's parent pid)."""
    reads = {str(path.relative_to(REPO_ROOT)): environment_reads(path)
             for path in sources("serving") if path.name != "config.py"}
    assert not {f: r for f, r in reads.items() if r}


def test_the_environment_walk_sees_an_unexplained_read(tmp_path):
    """A mutation of the rule's subject: a bare read is found; a write or a commented read is
    not."""
    sample = tmp_path / "sample.py"
    sample.write_text("import os\nx = os.environ.get('A')\nos.environ['B'] = '1'\n"
                      "y = os.getenv('C')  # why\n")
    assert environment_reads(sample) == ["2: x = os.environ.get('A')"]


def test_a_test_folder_shares_helpers_only_through_tests_support():
    """No test module imports a conftest or a test module of another folder: what two folders
    share lives in tests/support (a helper moved there is found by every folder, a fixture file
    imported across folders is not)."""
    reached = {}
    for path in sources("tests"):
        folder = path.relative_to(REPO_ROOT).parts[1]
        bad = sorted(m for m in imported(path) if m.startswith("tests.")
                     and not m.startswith("tests.support")
                     and (m.split(".")[1] != folder or m.split(".")[-1] == "conftest"
                          or ".conftest." in m))
        if bad:
            reached[str(path.relative_to(REPO_ROOT))] = bad
    assert not reached
