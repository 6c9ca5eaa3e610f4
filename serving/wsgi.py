"""gunicorn's entry point: `gunicorn --config python:serving.gunicorn_conf serving.wsgi:app`."""

from .app import create_app

app = create_app()
