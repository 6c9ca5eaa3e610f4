"""The diamonds classifier as the tests know it: its name, one valid instance, the admin token."""

TOKEN = "test-reload-token-0123"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
CLASSIFIER = "diamonds-classifier"
VALID = {"carat": 0.31, "color": "E", "clarity": "SI1", "depth": 61.5, "table": 55.0,
         "price": 420, "x": 4.3, "y": 4.32, "z": 2.65}
