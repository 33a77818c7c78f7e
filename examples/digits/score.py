"""Example entry script: classify 8x8 handwritten digits (64 pixel values, 0-16, per image).

    scorehost serve examples/digits/score.py
    curl -X POST localhost:5001/score -H 'Content-Type: application/json' -d @examples/digits/sample-request.json

Written as the Azure ML documentation shows: init() loads the model once from AZUREML_MODEL_DIR
(or from ./model beside this file, training it there on first use), run() scores one request.
"""

import json
import os
from pathlib import Path

import joblib
import numpy as np

model = None


def init():
    global model
    model_dir = Path(os.getenv("AZUREML_MODEL_DIR") or Path(__file__).parent / "model")
    model_path = model_dir / "model.joblib"
    if not model_path.exists():
        from train import train  # first use: build the model beside the script

        train(model_dir)
    model = joblib.load(model_path)


def run(data):
    images = np.array(json.loads(data), dtype=float).reshape(-1, 64)
    probabilities = model.predict_proba(images)
    return {
        "digits": probabilities.argmax(axis=1).tolist(),
        "confidence": probabilities.max(axis=1).round(4).tolist(),
    }
