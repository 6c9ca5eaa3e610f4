"""Values a snapshot's manifest took from the registry, checked before serving shows them.

A version goes into a response header and a metric label, a name into labels and pages: a
version must be semver (what Comet documents), every name and id a bounded safe string.
Anything else is an UnsafeValue naming the field, and the loader refuses the snapshot.
"""

from __future__ import annotations

import re

from model_contract.manifest import Manifest

MAX_LENGTH = 128
SEMVER = re.compile(r"(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
                    r"(-[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?(\+[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?")
SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
SAFE_TEXT = re.compile(r"[ -~]*")  # printable ASCII: status words such as "In Review"
# field -> (pattern, may be empty)
FIELDS = {"name": (SAFE_NAME, False), "workspace": (SAFE_NAME, False),
          "version": (SEMVER, False), "registryModelItemId": (SAFE_NAME, False),
          "experimentKey": (SAFE_NAME, True), "status": (SAFE_TEXT, True)}


class UnsafeValue(ValueError):
    """A manifest field holds what serving must not show; the message names the field."""


def check(found: Manifest) -> None:
    """Raise UnsafeValue for the first manifest field that is not a safe, bounded value."""
    for index, model in enumerate(found.models):
        for name, (pattern, may_be_empty) in FIELDS.items():
            value = getattr(model, name)
            problem = _problem(value, pattern, may_be_empty)
            if problem:
                shown = ascii(value)[:60] if isinstance(value, str) else type(value).__name__
                raise UnsafeValue(f"manifest models[{index}].{name} {shown} {problem}")


def _problem(value: object, pattern: re.Pattern[str], may_be_empty: bool) -> str | None:
    if not isinstance(value, str):
        return "is not a string"
    if not value:
        return None if may_be_empty else "is empty"
    if len(value) > MAX_LENGTH:
        return f"is longer than {MAX_LENGTH} characters"
    if not pattern.fullmatch(value):
        return "is not semver (e.g. 1.2.3)" if pattern is SEMVER else \
            "holds characters outside letters, digits, '.', '_' and '-'"
    return None
