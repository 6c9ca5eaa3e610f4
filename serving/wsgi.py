"""The app as a WSGI callable: what the front wraps (serving.front.rsgi), and gunicorn runs in the
benchmarks' baseline (bench/gunicorn_conf.py)."""

from serving.http.app import create_app

app = create_app()
