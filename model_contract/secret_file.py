"""A secret read from a mounted file (a Kubernetes Secret): UTF-8 text, stripped, not empty.

The message of SecretFileError names the variable and the file, never the value; each package
raises it again as its own error (registry_sync: SecretUnavailable, serving: ConfigError).
"""

from __future__ import annotations

from pathlib import Path


class SecretFileError(ValueError):
    """The secret file cannot be read, is not UTF-8 text, or holds only whitespace."""


def read(path: Path, name: str) -> str:
    """The secret in `path` (named by the variable `name`), stripped of surrounding whitespace."""
    try:
        value = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        why = getattr(exc, "strerror", None) or "not UTF-8 text"
        raise SecretFileError(f"{name} {str(path)!r} cannot be read: {why}") from None
    if not value:
        raise SecretFileError(f"{name} {str(path)!r} is empty")
    return value
