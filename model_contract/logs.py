"""JSON-lines logging: one event per line with fields, secrets masked before anything is written."""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
import traceback
from typing import Any

_secrets: set[str] = set()
_secrets_lock = threading.Lock()
MASK = "***"
LEVELS = ("debug", "info", "warning", "error")  # what LOG_LEVEL accepts


def redact(secret: str | None) -> None:
    """Register a secret so that it is masked in every log line from now on."""
    if secret and len(secret) >= 4:
        with _secrets_lock:
            _secrets.add(secret)


def mask(text: str) -> str:
    """Return text with every registered secret replaced by a mask."""
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, MASK)
    return text


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON object: time, level, logger, event and its fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        entry.update(getattr(record, "fields", {}))
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            entry["error_type"] = type(exc).__name__
            entry.setdefault("error", str(exc))
            entry["traceback"] = "".join(traceback.format_exception(exc)).rstrip()
        return mask(json.dumps(entry, default=str, separators=(",", ":")))


class EventLogger:
    """A logger whose calls name an event and pass its fields as keywords."""

    def __init__(self, name: str):
        self._logger = logging.getLogger(name)

    def enabled(self, level: int) -> bool:
        """True when events of this level are logged (to skip building costly fields)."""
        return self._logger.isEnabledFor(level)

    def _log(self, level: int, event: str, fields: dict[str, Any]) -> None:
        """Log one event; an `exc_info` field (an exception) adds its type and traceback."""
        if self._logger.isEnabledFor(level):
            exc = fields.pop("exc_info", None)
            self._logger.log(level, event, extra={"fields": fields},
                             exc_info=exc if isinstance(exc, BaseException) else None)

    def debug(self, event: str, **fields: Any) -> None:
        """Log a debug event."""
        self._log(logging.DEBUG, event, fields)

    def info(self, event: str, **fields: Any) -> None:
        """Log an info event."""
        self._log(logging.INFO, event, fields)

    def warning(self, event: str, **fields: Any) -> None:
        """Log a warning event."""
        self._log(logging.WARNING, event, fields)

    def error(self, event: str, **fields: Any) -> None:
        """Log an error event."""
        self._log(logging.ERROR, event, fields)


def get(name: str) -> EventLogger:
    """Return the event logger for a module."""
    return EventLogger(name)


def parse_level(value: str) -> str:
    """A LOG_LEVEL setting, lower-cased (ValueError naming the levels otherwise)."""
    if value.lower() not in LEVELS:
        raise ValueError("one of " + ", ".join(LEVELS))
    return value.lower()


def setup(level: str = "info", stream=None) -> None:
    """Send every log record to stderr (or stream) as JSON lines."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("urllib3", "werkzeug", "kubernetes"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
