"""Example entry script: classify 8x8 handwritten digits (64 pixel values, 0-16, per image).

    scorehost serve examples/digits/score.py
    curl -X POST localhost:5001/score -H 'Content-Type: application/json' -d @examples/digits/sample-request.json

Written as the Azure ML documentation shows: init() loads the model once from AZUREML_MODEL_DIR, run()
scores one request. Without AZUREML_MODEL_DIR (the command above) it loads ./model/model.joblib beside this
file, training it there on first use; with it (`--model`, `--model-dir`, a deployment) it never trains: a
registered model that is not where this script looks is an error, not a quietly different model.
"""

import json
import os
from pathlib import Path

import joblib
import numpy as np

model = None


def init():
    global model
    registered = os.getenv("AZUREML_MODEL_DIR")
    model_dir = Path(registered or Path(__file__).parent / "model")
    model_path = model_dir / "model.joblib"
    if not model_path.exists():
        if registered:
            raise FileNotFoundError(_not_found(model_dir))
        from train import train  # local first use: build the model beside the script

        train(model_dir)
    model = joblib.load(model_path)


def _not_found(model_dir):
    """What was expected, where, and what is there instead."""
    if not model_dir.is_dir():
        found = "that folder does not exist"
    else:
        names = sorted(f"{p.name}/" if p.is_dir() else p.name for p in model_dir.iterdir())
        found = f"it holds {', '.join(names[:20])}{', ...' if len(names) > 20 else ''}" if names else "it is empty"
    return (
        f"no model.joblib in AZUREML_MODEL_DIR ({model_dir}): {found}. This script loads "
        "$AZUREML_MODEL_DIR/model.joblib, the file registered by itself "
        "(`scorehost models register digits examples/digits/model/model.joblib`); a registered folder "
        "model/ is served as $AZUREML_MODEL_DIR/model/model.joblib. Without AZUREML_MODEL_DIR it trains "
        "a model beside the script."
    )


def run(data):
    images = np.array(json.loads(data), dtype=float).reshape(-1, 64)
    probabilities = model.predict_proba(images)
    return {
        "digits": probabilities.argmax(axis=1).tolist(),
        "confidence": probabilities.max(axis=1).round(4).tolist(),
    }
