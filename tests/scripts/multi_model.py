"""Two registered models found with `Model.get_model_path`, AZUREML_MODEL_DIR pointing at the folder of both.

Serve it with AZUREML_MODEL_DIR=tests/scripts/multi_model, which holds `<name>/<version>/` for each model:
"greeting" (versions 1 and 2, one file each: the latest, 2, is used) and "scaler" (version 3, two files,
so its path is the version folder). Body: {"data": {"name": "Ada", "values": [1, 2]}}.
"""

import json
import os

from azureml.core.model import Model


def init():
    global template, greeting_version, factor, offset
    greeting_file = Model.get_model_path("greeting")
    greeting_version = os.path.basename(os.path.dirname(greeting_file))
    with open(greeting_file) as f:
        template = json.load(f)["template"]
    scaler_folder = Model.get_model_path(model_name="scaler", version=3)
    with open(os.path.join(scaler_folder, "factor.json")) as f:
        factor = json.load(f)["factor"]
    with open(os.path.join(scaler_folder, "offset.json")) as f:
        offset = json.load(f)["offset"]


def run(raw_data):
    data = json.loads(raw_data)["data"]
    return {
        "greeting": template.format(name=data["name"]),
        "greeting_version": greeting_version,
        "scaled": [value * factor + offset for value in data["values"]],
    }
