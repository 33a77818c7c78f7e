"""Answers the text of the registered model's marker.txt: which version of the model it serves."""

import os

marker = None


def init():
    global marker
    with open(os.path.join(os.environ["AZUREML_MODEL_DIR"], "marker.txt")) as handle:
        marker = handle.read().strip()


def run(data):
    return {"model": marker}
