"""azureml-examples' `cli/endpoints/online` layout (the sample YAML files, model-1's model, code and conda file)."""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from pathlib import Path

__all__ = ["BLUE_DEPLOYMENT_YML", "ENDPOINT_YML", "OnlineSamples", "make_online_samples", "write_file"]

# azureml-examples cli/endpoints/online/managed/sample/*.yml, as published.
ENDPOINT_YML = """\
$schema: https://azuremlschemas.azureedge.net/latest/managedOnlineEndpoint.schema.json
name: my-endpoint
auth_mode: key
"""

BLUE_DEPLOYMENT_YML = """\
$schema: https://azuremlschemas.azureedge.net/latest/managedOnlineDeployment.schema.json
name: blue
endpoint_name: my-endpoint
model:
  path: ../../model-1/model/
code_configuration:
  code: ../../model-1/onlinescoring/
  scoring_script: score.py
environment:
  conda_file: ../../model-1/environment/conda.yaml
  image: mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu22.04:latest
instance_type: Standard_DS3_v2
instance_count: 1
"""

SCORE_PY = """\
import json
import logging
import os

import joblib
import numpy


def init():
    global model
    model_path = os.path.join(os.getenv("AZUREML_MODEL_DIR"), "model/sklearn_regression_model.pkl")
    model = joblib.load(model_path)


def run(raw_data):
    logging.info("model 1: request received")
    data = numpy.array(json.loads(raw_data)["data"])
    return model.predict(data).tolist()
"""

CONDA_YAML = """\
name: model-env
channels:
  - conda-forge
dependencies:
  - python=3.12
  - numpy=2.3.1
  - pip=25.1.1
  - scikit-learn=1.7.0
  - scipy=1.16.0
  - pip:
    - azureml-inference-server-http==1.4.1
    - inference-schema[numpy-support]
    - joblib
"""

# The start of a deployment file with the sample's code and paths, for variants that change one thing.
DEPLOYMENT_HEAD = """\
name: blue
endpoint_name: my-endpoint
code_configuration:
  code: ../../model-1/onlinescoring/
  scoring_script: score.py
"""
MODEL_BYTES = b"\x80\x04\x95joblib-pickle-of-a-LinearRegression" + bytes(range(256))


@dataclass(frozen=True)
class OnlineSamples:
    """`cli/endpoints/online/` of azureml-examples: managed/sample/*.yml and model-1/ (model, code, conda file)."""

    root: Path
    sample: Path  # managed/sample: the YAML files' folder
    model_dir: Path  # model-1/model
    model_file: Path  # model-1/model/sklearn_regression_model.pkl
    code_dir: Path  # model-1/onlinescoring
    conda: Path  # model-1/environment/conda.yaml

    @property
    def endpoint(self) -> Path:
        return self.sample / "endpoint.yml"

    @property
    def blue(self) -> Path:
        return self.sample / "blue-deployment.yml"

    def write(self, name: str, text: str) -> Path:
        """A YAML file of `text` (dedented) next to the sample's own files."""
        path = self.sample / name
        path.write_text(textwrap.dedent(text), encoding="utf-8")
        return path


def write_file(path: Path, content: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def make_online_samples(tmp_path: Path) -> OnlineSamples:
    root = tmp_path / "azureml-examples" / "cli" / "endpoints" / "online"
    sample = root / "managed" / "sample"
    write_file(sample / "endpoint.yml", ENDPOINT_YML)
    write_file(sample / "blue-deployment.yml", BLUE_DEPLOYMENT_YML)
    model_file = write_file(root / "model-1" / "model" / "sklearn_regression_model.pkl", MODEL_BYTES)
    write_file(root / "model-1" / "onlinescoring" / "score.py", SCORE_PY)
    conda = write_file(root / "model-1" / "environment" / "conda.yaml", CONDA_YAML)
    return OnlineSamples(root, sample, model_file.parent, model_file, root / "model-1" / "onlinescoring", conda)
