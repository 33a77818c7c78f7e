"""Azure ML's no-code deployment of an MLflow model, end to end: `endpoints create -f`, `deployments create -f` with
`model: {type: mlflow_model, path: model}` and no code_configuration, requests through the gateway, then `deployments
update -f` adding a score.py of the user's own (Azure's "customize the scoring script"), which keeps answering."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from _mlflow_models import COLUMNS, ROWS, load_pyfunc, save_iris_model, shared_workspace

pytestmark = pytest.mark.timeout(600)

ENDPOINT_YML = """\
$schema: https://azuremlschemas.azureedge.net/latest/managedOnlineEndpoint.schema.json
name: mlflow-iris
auth_mode: key
"""
# azureml-examples cli/endpoints/online/ncd/sklearn-deployment.yaml, with this test's model folder.
DEPLOYMENT_YML = """\
$schema: https://azuremlschemas.azureedge.net/latest/managedOnlineDeployment.schema.json
name: sklearn-deployment
endpoint_name: mlflow-iris
model:
  name: mir-sample-sklearn-ncd-model
  version: 1
  path: model
  type: mlflow_model
instance_type: Standard_DS3_v2
instance_count: 1
"""
CUSTOM_SCORE_PY = """\
import json
import os

import mlflow.pyfunc
import pandas as pd


def init():
    global model
    model = mlflow.pyfunc.load_model(os.path.join(os.environ["AZUREML_MODEL_DIR"], "model"))


def run(raw_data):
    data = json.loads(raw_data)["input_data"]
    frame = pd.DataFrame(data["data"], columns=data["columns"])
    return {"predictions": model.predict(frame).tolist(), "script": "custom"}
"""


def scorehost(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-m", "scorehost", *args], capture_output=True, text=True, cwd=cwd, timeout=500
    )
    assert done.returncode == 0, f"{args}: exit {done.returncode}\n{done.stdout}{done.stderr}"
    assert "Traceback" not in done.stderr, done.stderr
    return done


@pytest.fixture
def gateway(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    monkeypatch.setenv("SCOREHOST_HOME", str(shared_workspace(tmp_path_factory.getbasetemp())))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    scorehost("controlplane", "start", "--api-port", "0", "--gateway-port", str(port))
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        scorehost("controlplane", "stop")


def test_a_no_code_deployment_serves_the_model_and_takes_a_score_py_later(tmp_path: Path, gateway: str) -> None:
    import pandas as pd

    project = tmp_path / "ncd"
    project.mkdir()
    (project / "endpoint.yml").write_text(ENDPOINT_YML)
    (project / "sklearn-deployment.yml").write_text(DEPLOYMENT_YML)
    model = save_iris_model(project / "model")
    expected = load_pyfunc(model).predict(pd.DataFrame(ROWS, columns=COLUMNS)).tolist()

    scorehost("endpoints", "create", "-f", "endpoint.yml", cwd=project)
    created = scorehost("deployments", "create", "-f", "sklearn-deployment.yml", "--all-traffic", cwd=project)
    assert created.stdout.startswith("mlflow-iris/sklearn-deployment generation 1: ready")
    key = json.loads(scorehost("endpoints", "keys", "mlflow-iris", "--json").stdout)["primary"]

    def score(body: Any) -> httpx.Response:
        url = f"{gateway}/endpoints/mlflow-iris/score"
        return httpx.post(url, json=body, headers={"Authorization": f"Bearer {key}"}, timeout=60)

    split = {"input_data": {"columns": COLUMNS, "index": list(range(len(ROWS))), "data": ROWS}}
    assert score(split).json() == expected
    assert score({"input_data": ROWS}).json() == expected
    named = {"input_data": {name: [row[i] for row in ROWS] for i, name in enumerate(COLUMNS)}}
    assert score(named).json() == expected
    wrong = score({"input_data": {"columns": ["a", *COLUMNS[1:]], "data": ROWS}})
    assert wrong.status_code == 400
    assert "column 'sepal_length' is missing" in wrong.json()["message"]
    deployment = json.loads(scorehost("endpoints", "show", "mlflow-iris", "--json").stdout)["deployments"][0]
    assert deployment["script"].endswith(os.path.join("scorehost", "mlflow", "entry", "score.py"))

    # Azure's "customize the scoring script": the same YAML with code_configuration, the same model, its environment.
    code = project / "onlinescoring"
    code.mkdir()
    (code / "score.py").write_text(CUSTOM_SCORE_PY)
    customized = DEPLOYMENT_YML + textwrap.dedent(
        """\
        code_configuration:
          code: onlinescoring
          scoring_script: score.py
        """
    )
    (project / "sklearn-deployment.yml").write_text(customized)
    updated = scorehost("deployments", "update", "-f", "sklearn-deployment.yml", cwd=project)
    assert updated.stdout.startswith("mlflow-iris/sklearn-deployment generation 2: ready")
    assert score(split).json() == {"predictions": expected, "script": "custom"}
    environments = json.loads(scorehost("environments", "list", "--json").stdout)
    used = [environment for environment in environments if environment["used_by"]]
    assert [e["used_by"] for e in used] == [["mlflow-iris/sklearn-deployment"]]  # the model's own, for both
