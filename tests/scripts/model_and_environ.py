"""Answers the registered model's marker.txt and its own environment: what a deployment's script can see."""

import os

marker = None


def init():
    global marker
    with open(os.path.join(os.environ["AZUREML_MODEL_DIR"], "marker.txt")) as handle:
        marker = handle.read().strip()


def run(data):
    return {"model": marker, "environ": dict(os.environ), "pid": os.getpid()}
