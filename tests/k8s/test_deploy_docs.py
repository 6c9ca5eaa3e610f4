"""docs/deploy.md stays true: what it has you create is ignored by git, its commands name every
manifest, and its overlay builds into the whole deployment with your values."""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.support.pod import K8S_DIR, REPO_ROOT

DOCS = [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").rglob("*.md"))]
FENCE = re.compile(r"^ *```(\w*)\n(.*?)^ *```", re.S | re.M)
# What a shell line creates: a redirection's target, `mkdir -p DIR` (a folder: DIR/),
# `--from-env-file=FILE`.
CREATES = re.compile(r"(?:^|[\s;&|])(>>?|mkdir -p|--from-env-file=)\s*([^\s;&|<>()]+)", re.M)
DOC = REPO_ROOT / "docs" / "deploy.md"


def shell_blocks(path: Path) -> list[str]:
    return [body for lang, body in FENCE.findall(path.read_text()) if lang in ("sh", "bash", "")]


def created_files() -> set[str]:
    """Every relative path a shell block of the docs writes or makes."""
    found = set()
    for path in DOCS:
        for block in shell_blocks(path):
            found |= {name.strip("\"'") + ("/" if how == "mkdir -p" else "")
                      for how, name in CREATES.findall(block)}
    return {name for name in found if not name.startswith(("/", "$", "&", "-")) and "=" not in name}


def test_the_docs_create_their_secret_files_and_git_ignores_every_one():
    """`git add -A` after following the docs commits no API key."""
    created = created_files()
    assert {"secrets/", "secrets/api-key", "sidecar.env", "my-deploy/comet-secrets.env"} <= created
    for name in sorted(created):
        ignored = subprocess.run(["git", "check-ignore", "-q", "--no-index", name],
                                 cwd=REPO_ROOT, check=False)
        assert ignored.returncode == 0, f"{name} (created by the docs) is not in .gitignore"


def test_the_file_by_file_command_names_every_manifest_but_the_secret():
    """Leaving out networkpolicy.yaml left the sidecar's port open to the whole cluster."""
    [command] = [block for block in shell_blocks(DOC) if block.startswith("kubectl create -f k8s/")]
    named = set(re.findall(r"-f k8s/([\w.-]+)", command))
    assert named == {p.name for p in K8S_DIR.glob("*.yaml")} - {"secret.yaml"}


def test_the_walkthrough_has_every_step_of_a_first_deployment():
    text = DOC.read_text()
    for step in ("docker build", "docker push", "kind load docker-image", "registry-sync once",
                 "registry-sync register", "registry-sync promote", "kubectl apply -k my-deploy/",
                 "kubectl rollout status"):
        assert step in text, step


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl not installed")
def test_the_overlay_builds_the_whole_deployment_with_your_values(tmp_path):
    """`kubectl kustomize` of the walkthrough's overlay: every manifest of k8s/, your Secret,
    your settings merged into the ConfigMap, your image names."""
    text = DOC.read_text()
    overlay = re.search(r"cat > my-deploy/kustomization.yaml <<'EOF'\n(.*?)\n *EOF", text, re.S)
    shutil.copytree(K8S_DIR, tmp_path / "k8s")
    (tmp_path / "my-deploy").mkdir()
    (tmp_path / "my-deploy" / "kustomization.yaml").write_text(
        "\n".join(line[3:] for line in overlay.group(1).splitlines()))
    (tmp_path / "my-deploy" / "comet-secrets.env").write_text("api-key=k3y\nreload-token=t0k\n")
    built = subprocess.run(["kubectl", "kustomize", str(tmp_path / "my-deploy")],
                           capture_output=True, text=True, timeout=60)
    assert built.returncode == 0, built.stderr
    objects = {(o["kind"], o["metadata"]["name"]): o for o in yaml.safe_load_all(built.stdout)}
    base = {(o["kind"], o["metadata"]["name"]) for p in K8S_DIR.glob("*.yaml")
            for o in yaml.safe_load_all(p.read_text())}
    assert set(objects) == base
    secret = objects["Secret", "comet-secrets"]
    assert base64.b64decode(secret["data"]["api-key"]) == b"k3y"
    settings = objects["ConfigMap", "comet-registry-sync"]["data"]
    assert settings["COMET_WORKSPACE"] == "your-workspace" and settings["SYNC_INTERVAL"] == "10"
    spec = objects["Deployment", "comet-registry-sync"]["spec"]["template"]["spec"]
    images = {c["image"] for c in [*spec["initContainers"], *spec["containers"]]}
    assert images == {f"registry.example.com/ml/comet-registry-sync-{n}:0.1.0"
                      for n in ("sidecar", "serving")}
