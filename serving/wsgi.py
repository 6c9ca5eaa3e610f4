"""gunicorn's entry point: `gunicorn -c serving/gunicorn.conf.py serving.wsgi:app`."""

from .app import create_app

app = create_app()
