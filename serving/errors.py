"""The exceptions of serving, one small tree; HTTP codes are mapped to it only in http/app.py.

ServingError
├── ConfigError        a setting is missing or malformed (the message names it)
├── SnapshotNotFound   no folder snapshots/<id> under MODEL_ROOT
├── ModelRejected      a snapshot failed its manifest check, its loading or its golden predictions
├── NoModel            nothing is loaded yet, so nothing can be predicted
├── PredictionTimeout  a model call ran past PREDICT_TIMEOUT and was stopped
└── InvalidInput       a prediction request is malformed; carries every offending field
    └── BatchTooLarge  more instances than MAX_BATCH
"""

from __future__ import annotations

from dataclasses import dataclass


class ServingError(Exception):
    """Base of every error serving raises on purpose."""


class ConfigError(ServingError):
    """A setting is missing or malformed."""


class SnapshotNotFound(ServingError):
    """A snapshot id names no folder under MODEL_ROOT/snapshots."""

    def __init__(self, snapshot: str):
        super().__init__(f"snapshot {snapshot!r} does not exist")
        self.snapshot = snapshot


class ModelRejected(ServingError):
    """A snapshot cannot be served; the reason says why in one line."""

    def __init__(self, snapshot: str, reason: str):
        super().__init__(f"snapshot {snapshot} rejected: {reason}")
        self.snapshot, self.reason = snapshot, reason


class NoModel(ServingError):
    """No model has been loaded yet."""

    def __init__(self, reason: str = "no model is loaded yet"):
        super().__init__(reason)
        self.reason = reason


class PredictionTimeout(ServingError):
    """A model call ran past its deadline (PREDICT_TIMEOUT) and was stopped."""

    def __init__(self, seconds: float):
        super().__init__(f"the model took longer than PREDICT_TIMEOUT={seconds:g}s")
        self.seconds = seconds


@dataclass(frozen=True)
class FieldError:
    """One offending field of a request and what is wrong with it."""

    field: str
    message: str

    def to_json(self) -> dict[str, str]:
        """The error as it appears in a JSON response."""
        return {"field": self.field, "message": self.message}


class InvalidInput(ServingError):
    """A request that cannot be predicted; names each offending field."""

    def __init__(self, errors: list[FieldError], truncated: bool = False):
        fields = ", ".join(e.field for e in errors[:5]) + (", ..." if len(errors) > 5 else "")
        super().__init__(f"invalid input: {fields}")
        self.errors, self.truncated = errors, truncated


class BatchTooLarge(InvalidInput):
    """A batch with more instances than allowed."""
