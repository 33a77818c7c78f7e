"""The second deployment of Azure ML's managed online sample (model-2): it loads the same kind of model but answers
a constant, so a traffic split shows which deployment answered."""

import logging
import os

import joblib

regressor = None


def init():
    global regressor
    regressor = joblib.load(os.path.join(os.environ["AZUREML_MODEL_DIR"], "model", "sklearn_regression_model.pkl"))


def run(raw_data):
    logging.info("model 2: scoring a request")
    return [0.5, 0.5]
