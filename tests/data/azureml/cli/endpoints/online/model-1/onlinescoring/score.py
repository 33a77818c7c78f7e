"""A regression model's entry script, in the layout of Azure ML's managed online sample (model-1).

The model was registered from the folder `model/`, so Azure ML (and scorehost) lays it out as
$AZUREML_MODEL_DIR/model/sklearn_regression_model.pkl.
"""

import json
import logging
import os

import joblib
import numpy

regressor = None


def init():
    global regressor
    location = os.path.join(os.environ["AZUREML_MODEL_DIR"], "model", "sklearn_regression_model.pkl")
    regressor = joblib.load(location)
    logging.info("regressor loaded from %s", location)


def run(raw_data):
    logging.info("model 1: scoring a request")
    rows = numpy.asarray(json.loads(raw_data)["data"], dtype=float)
    return regressor.predict(rows).tolist()
