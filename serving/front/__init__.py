"""The serving front: nginx buffering every request before gunicorn's sync workers see it."""
