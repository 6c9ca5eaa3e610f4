"""Serving: the diamonds classifier as a Flask app behind granian, hot-swapping snapshots.

`serving.http.app.create_app` builds the app; `python -m serving.front` serves it (serving.front);
`serving.model.train` trains the model (`serving-train`).
"""
