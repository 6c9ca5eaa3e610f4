"""Every command's --help, as a newcomer types it: exit 0, the usage, never a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from devkit.processes import REPO_ROOT, python_env
from registry_sync.cli import build_parser

BIN = Path(sys.executable).parent


def _subcommands() -> list[str]:
    """registry-sync's subcommands, read from its parser (a new one is covered at once)."""
    action = next(a for a in build_parser()._actions if a.dest == "command")
    return sorted(action.choices)


COMMANDS = [
    [str(BIN / "registry-sync")],
    *([str(BIN / "registry-sync"), name] for name in _subcommands()),
    [sys.executable, "-m", "registry_sync"],
    [sys.executable, "-m", "registry_sync", "run"],
    [str(BIN / "local-registry")],
    [sys.executable, "-m", "local_registry"],
    [str(BIN / "serving-train")],
    [sys.executable, "-m", "serving.train"],
    [sys.executable, "-m", "serving.front"],
    [sys.executable, "-m", "devkit.demo"],
]


@pytest.mark.parametrize("command", COMMANDS,
                         ids=lambda c: " ".join([Path(c[0]).name, *c[1:]]))
def test_help_exits_0_with_its_usage_and_no_traceback(command):
    """`--help` answers at once (`python -m serving.front --help` starts no server)."""
    done = subprocess.run([*command, "--help"], cwd=REPO_ROOT, env=python_env(),
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    assert done.stdout.startswith("usage:"), done.stdout[:200]
    assert done.stderr == ""


def test_the_subcommands_are_the_readmes():
    """The README's synopsis lists every subcommand this test covers."""
    readme = (REPO_ROOT / "README.md").read_text()
    assert all(f"registry-sync {name} " in readme for name in _subcommands())


def test_run_help_names_the_jitter_and_the_settings():
    """The text that crashed argparse ("±10% jitter") is shown as written."""
    done = subprocess.run([str(BIN / "registry-sync"), "run", "--help"], capture_output=True,
                          text=True, timeout=60, env=python_env())
    assert "±10% jitter" in " ".join(done.stdout.split())
    assert "--sync-interval" in done.stdout


def test_serving_front_help_lists_its_settings():
    done = subprocess.run([sys.executable, "-m", "serving.front", "--help"], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=60, env=python_env())
    assert "MODEL_ROOT" in done.stdout and "ADMIN_PORT" in done.stdout
