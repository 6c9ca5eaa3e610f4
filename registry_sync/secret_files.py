"""Secrets: stripped of surrounding whitespace, one line, read from mounted files on each use
(model_contract.secret_file reads them).

A secret's value is never part of an error: messages name the variable (and the file) only.
"""

from __future__ import annotations

from pathlib import Path

from model_contract import secret_file

from .errors import ConfigError, SecretUnavailable


def read_secret_file(path: Path, name: str) -> str:
    """Read a secret from a mounted file, stripped.

    SecretUnavailable (a failed pass, retried: a rotation may be under way) if the file cannot
    be read, is empty or is malformed; the message names the variable and the file, never the
    value.
    """
    try:
        return secret_file.read(path, name)
    except secret_file.SecretFileError as exc:
        raise SecretUnavailable(str(exc)) from None


def check_secret_file(path: Path | None, name: str) -> None:
    """At start: a present but malformed secret file is a ConfigError; a missing or empty one
    is left to the passes (a failed pass each, under the INIT_MAX_FAILURES policy)."""
    if path is None:
        return
    try:
        secret_file.read(path, name)
    except secret_file.SecretRefused as exc:
        raise ConfigError(str(exc)) from None
    except secret_file.SecretFileError:
        pass  # missing, unreadable or empty: the passes report it
