"""The documentation's example as published: `from sklearn.externals import joblib`, removed in scikit-learn 0.23.

The model file `sklearn_regression_model.pkl` is the test's: it trains a regression and saves it into a
temporary AZUREML_MODEL_DIR.
"""

import json
import os

import numpy as np
from sklearn.externals import joblib


def init():
    global model
    # AZUREML_MODEL_DIR is an environment variable created during deployment.
    # It is the path to the model folder (./azureml-models/$MODEL_NAME/$VERSION)
    model_path = os.path.join(os.getenv("AZUREML_MODEL_DIR"), "sklearn_regression_model.pkl")
    model = joblib.load(model_path)


def run(raw_data):
    data = np.array(json.loads(raw_data)["data"])
    # Make prediction.
    y_hat = model.predict(data)
    # You can return any data type as long as it is JSON-serializable.
    return y_hat.tolist()
