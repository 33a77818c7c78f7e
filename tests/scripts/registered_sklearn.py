"""The Azure ML documentation's entry script: one registered model, `model.pkl`, found through AZUREML_MODEL_DIR.

Serve it with `--model NAME`, NAME's version registered from a file named model.pkl (a joblib-dumped scikit-learn
classifier on two features). Body: {"data": [[x1, x2], ...]}.
"""

import json
import os

import joblib
import numpy as np


def init():
    global model
    model_path = os.path.join(os.getenv("AZUREML_MODEL_DIR"), "model.pkl")
    model = joblib.load(model_path)


def run(raw_data):
    data = np.array(json.loads(raw_data)["data"])
    return model.predict(data).tolist()
