"""The textbook diamonds app this product grew from: the baseline of the benchmarks.

Kept as the textbook wrote it: per request, a one-row pandas DataFrame from the form (or JSON
body), numeric columns coerced, the two LabelEncoders and the StandardScaler applied, the
classifier called and its answer decoded by the target LabelEncoder. It loads the five pickles
that `serving-train --seed-layout` writes (the same files the benchmarks serve with ours), found
by name under TEXTBOOK_MODEL_DIR (default: the working directory). Run it as the textbook does:

    TEXTBOOK_MODEL_DIR=... flask --app bench.textbook_app run            # threaded dev server
    TEXTBOOK_MODEL_DIR=... gunicorn -w 2 bench.textbook_app:app          # "add a real server"
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pandas as pd
from flask import Flask, jsonify, request

COLUMNS = ["carat", "color", "clarity", "depth", "table", "price", "x", "y", "z"]
NUMERIC = ["carat", "depth", "table", "price", "x", "y", "z"]
FILES = {"model": "model.pkl", "color": "colorFeatureLabelEncoder.pkl",
         "clarity": "clarityFeatureLabelEncoder.pkl", "scaler": "scaler.pkl",
         "labels": "labelEncoder.pkl"}

app = Flask(__name__)


def _load(folder: Path) -> dict:
    """Unpickle the five artifacts, wherever they sit under folder."""
    found = {}
    for role, name in FILES.items():
        path = next(folder.rglob(name), None)
        if path is None:
            raise FileNotFoundError(f"{name} not found under {folder}")
        with open(path, "rb") as handle:
            found[role] = pickle.load(handle)
    return found


artifacts = _load(Path(os.environ.get("TEXTBOOK_MODEL_DIR", ".")))
model = artifacts["model"]
color_encoder = artifacts["color"]
clarity_encoder = artifacts["clarity"]
scaler = artifacts["scaler"]
label_encoder = artifacts["labels"]


@app.route("/")
def home():
    """A minimal form."""
    fields = "".join(f'<label>{c} <input name="{c}"></label><br>' for c in COLUMNS)
    return f'<form method="post" action="/predict">{fields}<button>Predict</button></form>'


@app.route("/predict", methods=["POST"])
def predict():
    """The form (or a JSON object) -> the predicted label."""
    data = request.get_json(silent=True) or request.form.to_dict()
    df = pd.DataFrame([data], columns=COLUMNS)
    df[NUMERIC] = df[NUMERIC].apply(pd.to_numeric)
    df["color"] = color_encoder.transform(df["color"])
    df["clarity"] = clarity_encoder.transform(df["clarity"])
    features = scaler.transform(df.values)
    prediction = model.predict(features)
    label = label_encoder.inverse_transform(prediction)[0]
    return jsonify({"prediction": str(label)})


@app.route("/ping")
def ping():
    """No model: the HTTP ceiling of this app under its server."""
    return "ok"
