"""init() records the environment the server gave it; run() returns it (AZUREML_MODEL_DIR, cwd, ports)."""

import os
import sys

seen = {}


def init():
    seen.update(
        model_dir=os.environ.get("AZUREML_MODEL_DIR"),
        cwd=os.getcwd(),
        module=__name__,
        script_dir_importable=os.path.dirname(os.path.abspath(__file__)) in sys.path,
    )


def run(data):
    return seen
