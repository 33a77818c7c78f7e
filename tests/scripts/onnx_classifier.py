"""An ONNX classifier run with onnxruntime, written the way the documentation's examples are.

The test trains a scikit-learn LogisticRegression, converts it with skl2onnx (no ZipMap, so probabilities are a
plain tensor) and saves it as `model.onnx` in a temporary AZUREML_MODEL_DIR. Body: {"data": [[f1, f2, f3, f4], ...]}.
"""

import json
import os

import numpy as np
import onnxruntime


def init():
    global session, input_name
    model_path = os.path.join(os.getenv("AZUREML_MODEL_DIR"), "model.onnx")
    session = onnxruntime.InferenceSession(model_path, providers=["CPUExecutionProvider"])
    input_name = session.get_inputs()[0].name


def run(raw_data):
    data = np.array(json.loads(raw_data)["data"], dtype=np.float32)
    labels, probabilities = session.run(None, {input_name: data})
    return {"labels": labels.tolist(), "probabilities": probabilities.tolist()}
