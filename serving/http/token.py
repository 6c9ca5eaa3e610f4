"""The admin token: a fixed value, or a file (a mounted Secret) re-read whenever it changes."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from model_contract import logs, secret_file

log = logs.get(__name__)


class ReloadToken:
    """The current token; a file is re-read when its identity, size or mtime changes."""

    def __init__(self, value: str | None, path: Path | None = None):
        self._value = value.strip() if value else None
        self._path = path
        self._seen: tuple[int, int, int] | None = None
        self._lock = threading.Lock()
        if path is not None:
            self._seen = _signature(path)

    def current(self) -> str | None:
        """The token now (a missing or empty file keeps the last good one: a rotation)."""
        if self._path is None:
            return self._value
        seen = _signature(self._path)
        if seen is None or seen == self._seen:
            return self._value
        with self._lock:
            self._seen = seen
            try:
                fresh = secret_file.read(self._path, "RELOAD_TOKEN_FILE")
            except secret_file.SecretRefused as exc:  # kept: a rotation may be half done
                log.warning("reload_token_refused", error=str(exc))
                return self._value
            except secret_file.SecretFileError:
                return self._value
            if fresh != self._value:
                logs.redact(fresh)
                self._value = fresh
                log.info("reload_token_reread", file=str(self._path))
        return self._value


def _signature(path: Path) -> tuple[int, int, int] | None:
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return stat.st_ino, stat.st_size, stat.st_mtime_ns
