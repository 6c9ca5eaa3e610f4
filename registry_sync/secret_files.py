"""Secrets: stripped of surrounding whitespace, one line, read from mounted files on each use.

A secret's value is never part of an error: messages name the variable (and the file) only.
"""

from __future__ import annotations

from pathlib import Path

from .errors import ConfigError, SecretUnavailable


def secret_value(value: str) -> str:
    """A secret stripped of surrounding whitespace; one line, without NUL."""
    value = value.strip()
    if any(c in value for c in "\r\n\x00"):
        raise ValueError("one line without CR, LF or NUL inside (the value is not shown)")
    return value


def read_secret_file(path: Path, name: str) -> str:
    """Read a secret from a mounted file, stripped.

    SecretUnavailable (a failed pass, retried: a rotation may be under way) if the file cannot
    be read, is empty or is malformed; the message names the variable and the file, never the
    value.
    """
    try:
        raw = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        why = getattr(exc, "strerror", None) or "not UTF-8 text"
        raise SecretUnavailable(f"{name} {str(path)!r} cannot be read: {why}") from None
    try:
        value = secret_value(raw)
    except ValueError as exc:
        raise SecretUnavailable(f"{name} {str(path)!r} must hold {exc}") from None
    if not value:
        raise SecretUnavailable(f"{name} {str(path)!r} is empty")
    return value


def check_secret_file(path: Path | None, name: str) -> None:
    """At start: a present but malformed secret file is a ConfigError; a missing or empty one
    is left to the passes (a failed pass each, under the INIT_MAX_FAILURES policy)."""
    if path is None:
        return
    try:
        read_secret_file(path, name)
    except SecretUnavailable as exc:
        if "must hold" in str(exc):
            raise ConfigError(str(exc)) from None
