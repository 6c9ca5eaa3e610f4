"""A secret: one line of printable ASCII, read from a variable or a mounted file (a Kubernetes
Secret), stripped of surrounding whitespace.

HTTP headers carry secrets (Authorization, Comet's API key): a character outside printable
ASCII would fail in the HTTP library, with the value in its message, or never match. The message
of SecretFileError names the variable and the file, never the value; each package raises it again
as its own error (registry_sync: SecretUnavailable, serving: ConfigError).
"""

from __future__ import annotations

from pathlib import Path

MAX_CHARACTERS = 4096  # far beyond any key or token; a header this long is refused by servers


class SecretFileError(ValueError):
    """The secret file cannot be read, is not UTF-8 text, or holds only whitespace."""


class SecretRefused(SecretFileError):
    """The secret file holds something no secret may be (not one line of printable ASCII)."""


def checked(value: str) -> str:
    """The secret stripped; ValueError saying what it must hold (never the value) otherwise."""
    value = value.strip()
    if len(value) > MAX_CHARACTERS or not all(" " <= c <= "~" for c in value):
        raise ValueError(f"one line of printable ASCII, at most {MAX_CHARACTERS} characters "
                         "(the value is not shown)")
    return value


def read(path: Path, name: str) -> str:
    """The secret in `path` (named by the variable `name`), checked as `checked` does."""
    try:
        value = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        why = getattr(exc, "strerror", None) or "not UTF-8 text"
        raise SecretFileError(f"{name} {str(path)!r} cannot be read: {why}") from None
    if not value:
        raise SecretFileError(f"{name} {str(path)!r} is empty")
    try:
        return checked(value)
    except ValueError as exc:
        raise SecretRefused(f"{name} {str(path)!r} must hold {exc}") from None
