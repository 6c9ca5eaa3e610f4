"""docker/: the images carry the OCI labels a registry and `docker inspect` show."""

from __future__ import annotations

import shlex
import tomllib

import pytest

from tests.support.dockerfiles import DOCKERFILES, REPO_ROOT, stages

PROJECT = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
REQUIRED = ("title", "description", "version", "licenses", "revision")


def labels(image: str) -> dict[str, str]:
    """The LABEL keys and values of the final stage (what the image carries)."""
    found = {}
    for kind, args in stages(DOCKERFILES[image])[-1]:
        if kind == "LABEL":
            found.update(pair.split("=", 1) for pair in shlex.split(args))
    return found


@pytest.mark.parametrize("image", DOCKERFILES)
def test_oci_labels_name_the_image_its_version_and_licence(image):
    """Version and licence as pyproject.toml states them; the commit from a build argument."""
    found = {key.removeprefix("org.opencontainers.image."): value
             for key, value in labels(image).items()}
    assert set(REQUIRED) <= set(found), sorted(found)
    assert found["version"] == PROJECT["version"]
    assert found["licenses"] == PROJECT["license"]
    assert image in found["title"] and found["description"]
    assert found["revision"] == "${REVISION}"
