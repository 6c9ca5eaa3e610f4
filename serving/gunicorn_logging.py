"""gunicorn's own log lines (boot, workers, errors) as JSON, like every other line we write."""

from __future__ import annotations

from gunicorn.glogging import Logger

from model_contract.logs import JsonFormatter


class JsonLogger(Logger):
    """gunicorn's logger with the JSON formatter on its error log; no access log."""

    def setup(self, cfg) -> None:
        """Set up as gunicorn does, then format as JSON lines."""
        super().setup(cfg)
        for handler in self.error_log.handlers:
            handler.setFormatter(JsonFormatter())
