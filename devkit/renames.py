"""Rewrite imports to the renovated layout: `python -m devkit.renames FILE...` (issue 27).

For merging work written against the old layout: every module that moved (registry_sync's
subpackages, common/, devkit/) is rewritten where a file imports it, absolute or relative (a
file that itself moved is read as at its old place), and dotted names in strings are rewritten
too (`"registry_sync.snapshot"`, `-m registry_sync.demo`). An import already written for the new
layout is left as it is. Files are changed in place; run ruff --fix after it to sort the imports.
Renamed methods (Syncer's install, refuse, ...; CometRegistry in place of CometClient for the
sync core) are not rewritten: the type checker and the tests name them.
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

MOVED = {  # old module -> new module
    **{f"registry_sync.{old}": f"registry_sync.{new}" for old, new in {
        "approvals": "registries.comet.approvals", "archive": "store.archive",
        "asset_download": "registries.comet.asset_download", "bounded_http": "ops.bounded_http",
        "candidate": "sync.candidate", "chunk_pipeline": "store.chunk_pipeline",
        "cluster": "cluster.member", "comet": "registries.comet.client", "daemon": "sync.daemon",
        "decision": "cluster.decision", "decision_seal": "cluster.decision_seal",
        "decision_watch": "cluster.decision_watch", "download_tally": "store.download_tally",
        "election": "cluster.election", "finder": "registries.comet.finder",
        "follower": "sync.follower", "gcs_store": "registries.remote.gcs_store",
        "installer": "store.installer", "kube": "hooks.kube", "lease_api": "cluster.lease_api",
        "metrics": "ops.metrics", "notifier": "hooks.notifier",
        "object_stores": "registries.remote.object_stores", "onprem": "registries.comet.onprem",
        "ops_server": "ops.server", "peer": "cluster.peer", "promote": "registries.comet.promote",
        "publish": "store.publish", "register": "registries.comet.register",
        "registry": "registries.values", "remote_assets": "registries.comet.remote_assets",
        "retry_policy": "registries.comet.retry_policy", "s3_store": "registries.remote.s3_store",
        "snapshot": "store.snapshot", "state": "store.state", "status": "ops.status",
        "syncer": "sync.syncer", "transfer": "store.transfer",
        "wake_forward": "cluster.wake_forward",
    }.items()},
    "registry_sync.versions": "common.versions", "registry_sync.demo": "devkit.demo",
    "registry_sync.demo_ports": "devkit.demo_ports",
    **{f"tests.support.{name}": f"devkit.{name}" for name in (
        "snapshots", "processes", "slow_clients", "models", "registry", "cluster", "jsonlog",
        "load")},
    "tests.k8s.fake_api": "devkit.fake_kube_api", "tests.k8s.fake_leases": "devkit.fake_leases",
    "registry_sync.guard": "registry_sync.guard.watch",
    **{f"registry_sync.guard_{name}": f"registry_sync.guard.{name}" for name in (
        "figures", "journal", "prometheus", "reports", "rollback")},
}
OLD_PLACE = {new: old for old, new in MOVED.items()}
PACKAGES = ("registry_sync.cluster", "registry_sync.guard")  # modules that became packages
# in prose and strings; `registry_sync.cluster` is now a package, so only its imports are moved
DOTTED = re.compile(r"\b(" + "|".join(re.escape(m) for m in sorted(MOVED, key=len, reverse=True)
                                      if m not in PACKAGES) + r")\b(?![./])")


def module_of(path: Path, root: Path) -> tuple[str, str, bool]:
    """The dotted module a file was (at its old place when it moved), is now, and if it is a
    package."""
    parts = list(path.resolve().relative_to(root).with_suffix("").parts)
    package = parts[-1] == "__init__"
    name = ".".join(parts[:-1] if package else parts)
    return OLD_PLACE.get(name, name), name, package


def exists(module: str, root: Path) -> bool:
    """True when a dotted module is a file or a package of the repository as it is now."""
    path = root.joinpath(*module.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def resolve(node: ast.ImportFrom, module: str, package: bool) -> str:
    """The absolute module a `from` import names, seen from `module`."""
    if not node.level:
        return node.module or ""
    base = module.split(".") if package else module.split(".")[:-1]
    return ".".join(base[:len(base) - node.level + 1] + [node.module] * bool(node.module))


def rewritten_import(node: ast.ImportFrom, here: str, now: str, package: bool,
                     root: Path) -> list[str] | None:
    """The absolute import lines a `from ... import` becomes, or None when nothing moved."""
    source, old = resolve(node, now, package), resolve(node, here, package)
    written_new = node.level and exists(source, root) and (node.module or all(
        exists(f"{source}.{a.name}", root) or f"{old}.{a.name}" not in MOVED for a in node.names))
    moved_file = here != now and not written_new
    if not written_new:
        source = old
    groups: dict[str, list[str]] = {}
    for alias in node.names:
        full = f"{source}.{alias.name}"
        if full in MOVED:
            target, name = MOVED[full].rsplit(".", 1)
            renamed = alias.asname or (alias.name if name != alias.name else None)
            shown = name + (f" as {renamed}" if renamed else "")
        else:
            target = MOVED.get(source, source)
            shown = alias.name + (f" as {alias.asname}" if alias.asname else "")
        groups.setdefault(target, []).append(shown)
    if list(groups) == [source] and not (node.level and moved_file):
        return None
    return [f"from {target} import {', '.join(names)}" for target, names in groups.items()]


def rewrite(path: Path, root: Path) -> bool:
    """Rewrite one file in place; True if it changed."""
    text = path.read_text(encoding="utf-8")
    here, now, package = module_of(path, root)
    lines = text.splitlines(keepends=True)
    edits = []
    for node in ast.walk(ast.parse(text)):
        new = isinstance(node, ast.ImportFrom) and rewritten_import(node, here, now, package, root)
        if new:
            indent = re.match(r"\s*", lines[node.lineno - 1]).group(0)
            # a trailing comment (the F401 waiver of fixtures imported for pytest) follows each line
            found = re.search(r"\s*#.*$", "".join(lines[node.lineno - 1:node.end_lineno]), re.M)
            comment = found.group(0).rstrip() if found else ""
            edits.append((node.lineno, node.end_lineno,
                          "".join(f"{indent}{n}{comment}\n" for n in new)))
    for start, end, new in sorted(edits, reverse=True):
        lines[start - 1:end] = [new]
    changed = "".join(line if line.lstrip().startswith(("from ", "import "))
                      else DOTTED.sub(lambda m: MOVED[m.group(1)], line) for line in lines)
    if changed != text:
        path.write_text(changed, encoding="utf-8")
    return changed != text


def main(argv: list[str]) -> int:
    """Rewrite the named files; print those that changed."""
    root = Path(__file__).resolve().parents[1]
    for name in argv:
        if name.endswith(".py") and rewrite(Path(name), root):
            print(name)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
