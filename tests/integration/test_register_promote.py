"""`registry-sync register` and `promote` against the local registry, as scripts and CI use them."""

import subprocess
import sys

from tests.support.processes import REPO_ROOT, python_env
from tests.support.registry import unique_name


def cli(registry, *args):
    return subprocess.run([sys.executable, "-m", "registry_sync.cli", *args], cwd=REPO_ROOT,
                          env=python_env(**registry.env()), capture_output=True, text=True,
                          timeout=60)


def test_register_a_folder_then_promote_and_demote_the_previous(local_registry, tmp_path):
    name = unique_name("clf")
    folder = tmp_path / "model"
    (folder / "sub").mkdir(parents=True)
    (folder / "pipeline.skops").write_bytes(b"p" * 100)
    (folder / "sub" / "metadata.json").write_text("{}")
    done = cli(local_registry, "register", "--model", name, "--version", "1.0.0", "--status",
               "Production", str(folder))
    assert done.returncode == 0, done.stderr
    assert f"registered {local_registry.workspace}/{name} 1.0.0 (status Production)" in done.stdout
    assert done.stderr == ""  # one-shot commands print no log lines unless something is wrong
    assets = {a["fileName"]: a["fileSize"]
              for a in local_registry.details(name)["versions"][0]["assets"]}
    assert assets == {"pipeline.skops": 100, "sub/metadata.json": 2}

    assert cli(local_registry, "register", "--model", name, "--version", "1.1.0",
               str(folder / "pipeline.skops")).returncode == 0
    done = cli(local_registry, "promote", name, "1.1.0", "--tag", "canary", "--demote-to", "None")
    assert done.returncode == 0, done.stderr
    assert "demoted" in done.stdout and "Production version is now 1.1.0" in done.stdout
    versions = {v["version"]: v for v in local_registry.details(name)["versions"]}
    assert versions["1.1.0"]["status"] == "Production" and versions["1.1.0"]["tags"] == ["canary"]
    assert versions["1.0.0"]["status"] == "None"

    cleared = cli(local_registry, "promote", name, "1.1.0", "--status", "None")
    assert cleared.returncode == 0, cleared.stderr
    assert cleared.stdout.strip() == (
        f"set {local_registry.workspace}/{name} 1.1.0 to no status (None)")


def test_mistakes_get_one_clear_line(local_registry, tmp_path):
    missing = cli(local_registry, "register", "--model", "m", "--version", "1.0.0",
                  str(tmp_path / "nope"))
    assert missing.returncode == 2
    assert missing.stderr.strip().endswith("is neither a file nor a folder")
    unknown = cli(local_registry, "promote", unique_name("ghost"), "1.0.0")
    assert unknown.returncode == 1 and "not found in workspace" in unknown.stderr
    assert "Traceback" not in missing.stderr + unknown.stderr
