"""The v1 SDK's way to find a model: `Model.get_model_path("linear_model")` from `azureml.core.model`.

Serve it with AZUREML_MODEL_DIR (or --model-dir) set to the model's version folder, `<root>/linear_model/1`,
holding `model.json` ({"weights": [...], "bias": ...}). Body: {"data": [[x1, x2], ...]}.
"""

import json
import os

from azureml.core.model import Model


def init():
    global weights, bias, model_file
    model_path = Model.get_model_path("linear_model")
    with open(model_path) as f:
        model = json.load(f)
    weights, bias = model["weights"], model["bias"]
    model_file = os.path.relpath(model_path, os.getenv("AZUREML_MODEL_DIR"))


def run(raw_data):
    rows = json.loads(raw_data)["data"]
    predictions = [sum(w * x for w, x in zip(weights, row, strict=True)) + bias for row in rows]
    return {"predictions": predictions, "model_file": model_file}
