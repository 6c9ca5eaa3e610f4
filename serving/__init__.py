"""Serving: the diamonds classifier as a Flask app under gunicorn, hot-swapping snapshots.

`serving.app.create_app` builds the app; `serving.wsgi:app` is gunicorn's entry point;
`serving.train` trains the model (`serving-train`).
"""
