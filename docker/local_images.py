"""Build both images from docker/ without a Docker daemon: buildah on a base made on this machine.

No image can be pulled here, so `PYTHON_IMAGE` is a local base: Debian bookworm (minbase, whose
python3 is 3.11) made by debootstrap, with pip and setuptools installed the way python:3.11-slim
has them (under /usr/local, uninstallable, no EXTERNALLY-MANAGED marker) and the machine's CA
bundle, so that pip inside the build reaches the package index. The base is cached in .images/
(and in buildah's storage). The Dockerfiles are then built unchanged by `buildah bud --isolation
chroot --format docker` (the Docker format keeps HEALTHCHECK). Users build with Docker on
python:3.11-slim (docs/deploy.md); this is how the project builds and tests the same Dockerfiles.

    python docker/local_images.py     # base if missing, then both images; sizes and times

.images/built.json records each image's name, id, size, build time and the digest of the build
context it was built from, so tests/images know whether the built images are this tree's.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STATE = ROOT / ".images"
BASE_TAR = STATE / "base-bookworm.tar"
BUILT = STATE / "built.json"
BASE_IMAGE = "localhost/comet-registry-sync-base:bookworm"
IMAGES = {  # the names k8s/deployment.yaml runs
    "sidecar": ("docker/Dockerfile.sidecar", "localhost/comet-registry-sync/sidecar:0.1.0"),
    "serving": ("docker/Dockerfile.serving", "localhost/comet-registry-sync/serving:0.1.0"),
}
# Everything .dockerignore lets into the build context, and the Dockerfiles.
CONTEXT = ("pyproject.toml", "README.md", "model_contract", "common", "registry_sync",
           "serving",
           "docker/constraints.txt", "docker/Dockerfile.sidecar", "docker/Dockerfile.serving",
           ".dockerignore")
MIRROR = os.environ.get("DEBIAN_MIRROR", "http://deb.debian.org/debian")
PACKAGES = "python3,python3-venv,python-is-python3,ca-certificates"
HOST_CA = Path("/etc/ssl/certs/ca-certificates.crt")
# Run inside the new root: pip from Debian's own wheel installs pip and setuptools into
# /usr/local with a RECORD (as in python:3.11-slim, so the Dockerfiles can uninstall them);
# Debian's python3-pip could not be uninstalled by pip.
CUSTOMIZE = """set -e
rm -f /usr/lib/python3.11/EXTERNALLY-MANAGED
set -- /usr/share/python-wheels/pip-*.whl
python "$1/pip" install --quiet --no-index --no-cache-dir --disable-pip-version-check \
    /usr/share/python-wheels/pip-*.whl /usr/share/python-wheels/setuptools-*.whl
printf '[global]\\ncert = /etc/ssl/certs/ca-certificates.crt\\n' > /etc/pip.conf
apt-get clean
rm -rf /var/lib/apt/lists/* /var/cache/apt/* /usr/share/doc/* /usr/share/man/* /usr/share/info/*
"""


def run(*argv: str, quiet: bool = False) -> str:
    """Run a command; its output, or exit naming the command when it fails."""
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.stderr.write(done.stdout[-4000:] + done.stderr[-4000:])
        sys.exit(f"local_images: `{' '.join(argv[:3])} ...` failed ({done.returncode})")
    if not quiet:
        sys.stdout.write(done.stdout)
    return done.stdout


def recipe_digest() -> str:
    """What the base depends on: this recipe and the CA bundle it trusts."""
    recipe = "\n".join((MIRROR, PACKAGES, CUSTOMIZE)).encode()
    return hashlib.sha256(recipe + HOST_CA.read_bytes()).hexdigest()[:16]


def context_digest(root: Path = ROOT) -> str:
    """SHA-256 over every file of the build context (names and contents)."""
    digest = hashlib.sha256()
    for name in CONTEXT:
        path = root / name
        files = sorted(path.rglob("*")) if path.is_dir() else [path]
        for file in files:
            if file.is_file() and "__pycache__" not in file.parts and file.suffix != ".pyc":
                digest.update(str(file.relative_to(root)).encode() + b"\0" + file.read_bytes())
    return digest.hexdigest()[:16]


def image_info(name: str) -> dict | None:
    """An image's id, labels and size as buildah reports them; None when it is not in storage."""
    done = subprocess.run(["buildah", "inspect", "--type", "image", name], capture_output=True,
                          text=True, check=False)
    if done.returncode != 0:
        return None
    inspected = json.loads(done.stdout)
    listed = json.loads(run("buildah", "images", "--json", name, quiet=True))
    return {"id": inspected["FromImageID"], "size": listed[0]["size"],
            "labels": inspected["OCIv1"]["config"].get("Labels") or {}}


def make_base_tar() -> None:
    """debootstrap the base root, make it python:3.11-slim-like, and tar it (the cache)."""
    rootfs = STATE / "rootfs"
    shutil.rmtree(rootfs, ignore_errors=True)
    print(f"debootstrap bookworm ({PACKAGES}) from {MIRROR}: a few minutes", flush=True)
    run("debootstrap", "--variant=minbase", f"--include={PACKAGES}", "bookworm", str(rootfs),
        MIRROR, quiet=True)
    shutil.copyfile(HOST_CA, rootfs / "etc/ssl/certs/ca-certificates.crt")
    run("chroot", str(rootfs), "/bin/sh", "-c", CUSTOMIZE, quiet=True)
    partial = BASE_TAR.with_suffix(".part")
    run("tar", "--numeric-owner", "--exclude=./dev/*", "--exclude=./proc/*", "--exclude=./sys/*",
        "-C", str(rootfs), "-cf", str(partial), ".")
    partial.rename(BASE_TAR)  # only a complete tar is ever taken for the cache
    shutil.rmtree(rootfs)


def import_base(digest: str) -> None:
    """Commit the cached tar as BASE_IMAGE, labelled with its recipe digest."""
    container = run("buildah", "from", "scratch", quiet=True).strip()
    try:
        run("buildah", "add", "--quiet", container, str(BASE_TAR), "/", quiet=True)
        run("buildah", "config", "--env", "LANG=C.UTF-8", "--cmd", "python3",
            "--label", f"comet-registry-sync.base-recipe={digest}", container)
        run("buildah", "commit", "--quiet", "--rm", container, BASE_IMAGE, quiet=True)
    except SystemExit:
        subprocess.run(["buildah", "rm", container], capture_output=True, check=False)
        raise


def ensure_base() -> None:
    """The base image in storage, from the cached tar, from debootstrap only when neither is."""
    digest = recipe_digest()
    info = image_info(BASE_IMAGE)
    if info and info["labels"].get("comet-registry-sync.base-recipe") == digest:
        return
    stamp = STATE / "base-recipe"
    if not BASE_TAR.exists() or not stamp.exists() or stamp.read_text() != digest:
        BASE_TAR.unlink(missing_ok=True)
        make_base_tar()
        stamp.write_text(digest)
    import_base(digest)
    if info:  # the base of an older recipe, now untagged
        subprocess.run(["buildah", "rmi", info["id"]], capture_output=True, check=False)


def build(kind: str) -> dict:
    """Build one image from its unchanged Dockerfile; its name, id, size and build seconds."""
    dockerfile, name = IMAGES[kind]
    previous = image_info(name)
    started = time.monotonic()
    run("buildah", "bud", "--quiet", "--isolation", "chroot", "--format", "docker",
        "--build-arg", f"PYTHON_IMAGE={BASE_IMAGE}", "--file", dockerfile, "--tag", name,
        str(ROOT), quiet=True)
    seconds = round(time.monotonic() - started, 1)
    info = image_info(name)
    if previous and previous["id"] != info["id"]:  # the old build, now untagged
        subprocess.run(["buildah", "rmi", previous["id"]], capture_output=True, check=False)
    return {"name": name, "id": info["id"], "size": info["size"], "build_seconds": seconds}


def main() -> int:
    """Build the base if needed, then both images; print and record sizes and times."""
    if shutil.which("buildah") is None or shutil.which("debootstrap") is None:
        sys.exit("local_images: needs buildah and debootstrap (make image-deps installs them)")
    STATE.mkdir(exist_ok=True)
    os.chdir(ROOT)
    ensure_base()
    digest = context_digest()
    built = {kind: build(kind) for kind in IMAGES}
    BUILT.write_text(json.dumps({"context": digest, "images": built}, indent=2) + "\n")
    for kind, image in built.items():
        print(f"{kind:8} {image['name']}  {image['size']}  built in {image['build_seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
