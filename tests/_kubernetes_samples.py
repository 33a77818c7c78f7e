"""Azure/azureml-examples' `cli/endpoints/online/kubernetes/` deployments, written into a test's folder with the
code, model and conda files they name (the reader checks that these exist), for `scorehost k8s -f` and
`scorehost ray config -f`."""

from __future__ import annotations

from pathlib import Path

__all__ = ["BLUE", "GREEN", "PROBES", "write_project"]

# kubernetes-blue-deployment.yml as azureml-examples has it today
BLUE = """\
$schema: https://azuremlschemas.azureedge.net/latest/kubernetesOnlineDeployment.schema.json
name: blue
type: kubernetes
endpoint_name: my-endpoint
model:
  path: ../model-1/model/
code_configuration:
  code: ../model-1/onlinescoring/
  scoring_script: score.py
environment:
  conda_file: ../model-1/environment/conda.yaml
  image: mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu22.04:latest
request_settings:
  request_timeout_ms: 3000
  max_queue_wait_ms: 3000
resources:
  requests:
    cpu: "0.1"
    memory: "0.1Gi"
  limits:
    cpu: "0.2"
    memory: "200Mi"
tags:
  tag1: deployment-tag1-value
instance_count: 1
scale_settings:
  type: default
"""

# kubernetes-green-deployment.yml
GREEN = """\
$schema: https://azuremlschemas.azureedge.net/latest/kubernetesOnlineDeployment.schema.json
name: green
type: kubernetes
endpoint_name: my-endpoint
app_insights_enabled: true
model:
  path: ../model-2/model/
code_configuration:
  code: ../model-2/onlinescoring/
  scoring_script: score.py
environment:
  conda_file: ../model-2/environment/conda.yaml
  image: mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu22.04:latest
instance_type: defaultinstancetype
resources:
  requests:
    cpu: "0.1"
    memory: "0.1Gi"
scale_settings:
  type: target_utilization
  min_instances: 1
  max_instances: 3
  polling_interval: 10
  target_utilization_percentage: 70
"""

# The blue deployment as the examples had it before 2023, with both probes, plus variables and a GPU
PROBES = """\
name: Blue-GPU
type: kubernetes
endpoint_name: my-endpoint
code_configuration:
  code: ../model-1/onlinescoring/
  scoring_script: score.py
environment_variables:
  WORKER_THREADS: 4
  MODEL_FLAVOR: small
request_settings:
  request_timeout_ms: 3000
  max_concurrent_requests_per_instance: 4
resources:
  requests:
    cpu: "500m"
    memory: "1Gi"
    nvidia.com/gpu: "1"
liveness_probe:
  initial_delay: 5
  period: 5
  timeout: 10
  success_threshold: 1
  failure_threshold: 1
readiness_probe:
  initial_delay: 7
  period: 3
  timeout: 4
  success_threshold: 2
  failure_threshold: 6
instance_count: 2
"""

_SCORE = """\
import json
import os


def init():
    global folder
    folder = os.getenv("AZUREML_MODEL_DIR")


def run(raw_data):
    return [len(json.loads(raw_data)["data"])]
"""

_CONDA = """\
name: model-env
channels:
  - conda-forge
dependencies:
  - python=3.12
  - pip
"""


def write_project(root: Path) -> dict[str, Path]:
    """The three deployment files under root/kubernetes/, and model-1 and model-2 beside it, by name."""
    for model in ("model-1", "model-2"):
        (root / model / "onlinescoring").mkdir(parents=True)
        (root / model / "onlinescoring" / "score.py").write_text(_SCORE)
        (root / model / "model").mkdir()
        (root / model / "model" / "sklearn_regression_model.pkl").write_bytes(b"not a real pickle")
        (root / model / "environment").mkdir()
        (root / model / "environment" / "conda.yaml").write_text(_CONDA)
    (root / "kubernetes").mkdir()
    files = {}
    for name, text in (("blue", BLUE), ("green", GREEN), ("probes", PROBES)):
        files[name] = root / "kubernetes" / f"kubernetes-{name}-deployment.yml"
        files[name].write_text(text)
    return files
