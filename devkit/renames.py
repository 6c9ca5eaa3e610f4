"""Rewrite imports to the renovated layout: `python -m devkit.renames FILE...` (issue 27).

For merging work written against the old layout: every module that moved (registry_sync's and
serving's subpackages, common/, devkit/) is rewritten where a file imports it, absolute or relative
(a file that itself moved is read as at its old place; a trailing comment is kept), and dotted
names in strings are rewritten too (`"registry_sync.snapshot"`, `-m serving.validator`,
`"serving.shadow.GATHER_SECONDS"`, Flask's `app.extensions["serving.holder"]` keys). An import
already written for the new layout is left as it is. Files are changed in place; run ruff --fix
after it to sort the imports. Renamed methods (Syncer's install, refuse, ...; CometRegistry in
place of CometClient for the sync core) are not rewritten: the type checker and the tests name
them.
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
    **{f"serving.{old}": f"serving.{new}" for old, new in {
        "api": "http.api", "app": "http.app", "context": "http.context", "labels": "http.labels",
        "ops": "http.ops", "rollbacks": "http.rollbacks", "token": "http.token", "web": "http.web",
        "webhook": "http.webhook", "lean": "http.lean", "replies": "http.replies",
        "columns": "inputs.columns", "decoding": "inputs.decoding", "schema": "inputs.schema",
        "validation": "inputs.checks",
        "dataset": "model.dataset", "description": "model.description", "forest": "model.forest",
        "frames": "model.frames", "golden": "model.golden", "leaf_masks": "model.leaf_masks",
        "loader": "model.loader", "predictions": "model.predictions",
        "predictors": "model.predictors", "registry_values": "model.registry_values",
        "signature": "model.signature", "train": "model.train",
        "background": "swap.background", "cgroups": "swap.cgroups",
        "containment": "swap.containment", "deadline": "swap.deadline", "holder": "swap.holder",
        "overruns": "swap.overruns", "prefork": "swap.prefork", "runners": "swap.runners",
        "seccomp": "swap.seccomp", "validations": "swap.jobs", "validator": "swap.validator",
        "zygote": "swap.zygote",
        "canary": "challenger.canary", "challenger": "challenger.candidate",
        "comparison": "challenger.comparison", "role_metrics": "challenger.role_metrics",
        "role_report": "challenger.report", "roles": "challenger.roles",
        "shadow": "challenger.shadow", "shadow_process": "challenger.shadow_process",
        "verdict": "challenger.experiment_log",
        "champion_metrics": "telemetry.champion_metrics", "metrics": "telemetry.metrics",
        "monitoring": "telemetry.mpm_events", "mpm_sdk": "telemetry.mpm_sdk",
        "prediction_ids": "telemetry.prediction_ids",
    }.items()},
}
OLD_PLACE = {new: old for old, new in MOVED.items()}
IMPORT_LINE = re.compile(r"(\s*)from ([\w.]+) import (\w+(?:, \w+)*)")
# in prose and strings, with the attribute that may follow (`"serving.shadow.GATHER_SECONDS"`)
DOTTED = re.compile(r"\b(" + "|".join(re.escape(m) for m in sorted(MOVED, key=len, reverse=True))
                    + r")\b((?:\.\w+)*)")


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
            # a module that became a package of its name (serving.challenger): a submodule
            # imported from it is already the new layout
            fresh = written_new or exists(f"{source}.{alias.name}", root)
            target = source if fresh else MOVED.get(source, source)
            shown = alias.name + (f" as {alias.asname}" if alias.asname else "")
        groups.setdefault(target, []).append(shown)
    if list(groups) == [source] and not (node.level and moved_file):
        return None
    return [f"from {target} import {', '.join(names)}" for target, names in groups.items()]


def dotted(match: re.Match[str], root: Path) -> str:
    """A dotted name in prose or a string at its new place; a path (`serving/app`), or a name
    already of the new layout (`serving.challenger.roles`: a module now a package), is kept."""
    old, rest = match.group(1), match.group(2)
    first = rest.split(".")[1] if rest else ""
    if match.string[match.end():match.end() + 1] == "/" or (exists(old, root) and (
            not first or exists(f"{old}.{first}", root))):
        return match.group(0)
    return MOVED[old] + rest


def code_in_string(line: str) -> str:
    """A `from serving import containment` line inside a string (a `python -c` script), moved."""
    found = IMPORT_LINE.fullmatch(line.rstrip("\n"))
    if not found:
        return line
    indent, source, names = found.groups()
    groups: dict[str, list[str]] = {}
    for name in (n.strip() for n in names.split(",")):
        target, new = MOVED.get(f"{source}.{name}", f"{source}.{name}").rsplit(".", 1)
        groups.setdefault(target, []).append(new + (f" as {name}" if new != name else ""))
    if list(groups) == [source]:
        return line
    return "".join(f"{indent}from {t} import {', '.join(n)}\n" for t, n in groups.items())


def rewrite(path: Path, root: Path) -> bool:
    """Rewrite one file in place; True if it changed."""
    text = path.read_text(encoding="utf-8")
    changed = rewritten(text, *module_of(path, root), root)
    if changed != text:
        path.write_text(changed, encoding="utf-8")
    return changed != text


def rewritten(text: str, here: str, now: str, package: bool, root: Path) -> str:
    """A module's source (once `here`, now `now`) with its imports and dotted names moved."""
    lines = text.splitlines(keepends=True)
    edits, imports = [], set()
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.ImportFrom):
            imports.update(range(node.lineno, node.end_lineno + 1))
        new = isinstance(node, ast.ImportFrom) and rewritten_import(node, here, now, package, root)
        if new:
            indent = re.match(r"\s*", lines[node.lineno - 1]).group(0)
            # a trailing comment (a noqa and its reason) stays on every line it becomes
            found = re.search(r"\s*#.*$", "".join(lines[node.lineno - 1:node.end_lineno]), re.M)
            comment = found.group(0).rstrip() if found else ""
            edits.append((node.lineno, node.end_lineno,
                          "".join(f"{indent}{n}{comment}\n" for n in new)))
    lines = [line if number in imports else code_in_string(line)
             for number, line in enumerate(lines, 1)]
    for start, end, new in sorted(edits, reverse=True):
        lines[start - 1:end] = [new]
    # every line: `import serving.metrics` and prose alike (new-layout names are kept)
    return "".join(DOTTED.sub(lambda m: dotted(m, root), line) for line in lines)


def main(argv: list[str]) -> int:
    """Rewrite the named files; print those that changed."""
    root = Path(__file__).resolve().parents[1]
    for name in argv:
        if name.endswith(".py") and rewrite(Path(name), root):
            print(name)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
