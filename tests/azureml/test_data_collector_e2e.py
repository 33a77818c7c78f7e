"""A deployment with Azure ML's `data_collector`, from its own YAML, through the real control plane, gateway and
`serve` processes; the rows read back with `scorehost deployments data` as JSON lines, CSV and Parquet."""

from __future__ import annotations

import io
import json
import os
import shutil
import time
from pathlib import Path

import httpx
import pandas as pd
import pytest
from test_projects_e2e import SCRIPTS, gateway, key_of, scorehost, workspace

pytestmark = pytest.mark.timeout(300)
__all__ = ["gateway", "workspace"]  # the fixtures, imported to be used here

ENDPOINT = """\
$schema: https://azuremlschemas.azureedge.net/latest/managedOnlineEndpoint.schema.json
name: collecting
auth_mode: key
"""
DEPLOYMENT = """\
$schema: https://azuremlschemas.azureedge.net/latest/managedOnlineDeployment.schema.json
name: blue
endpoint_name: collecting
code_configuration:
  code: code
  scoring_script: score.py
instance_type: Standard_F2s_v2
instance_count: 1
data_collector:
  collections:
    model_inputs:
      enabled: 'True'
      data:
        name: my_model_inputs_data_asset
        version: 1
    model_outputs:
      enabled: 'True'
    request:
      enabled: 'True'
    response:
      enabled: 'True'
  rolling_rate: Hour
  request_logging:
    capture_headers: [x-client-id, authorization]
"""


def test_a_data_collector_deployment_collects_through_the_gateway(tmp_path: Path, gateway: str) -> None:
    (tmp_path / "code").mkdir()
    shutil.copy(SCRIPTS / "collects_data.py", tmp_path / "code" / "score.py")
    (tmp_path / "endpoint.yml").write_text(ENDPOINT)
    (tmp_path / "deployment.yml").write_text(DEPLOYMENT)
    scorehost("endpoints", "create", "-f", "endpoint.yml", cwd=tmp_path)
    created = scorehost("deployments", "create", "-f", "deployment.yml", "--all-traffic", cwd=tmp_path)
    assert "data_collector.collections.model_inputs.data" in created.stderr  # Azure's data asset: no meaning here
    headers = {"Authorization": f"Bearer {key_of('collecting')}", "x-client-id": "shop-7"}
    ids = []
    for n in range(5):
        answer = httpx.post(
            f"{gateway}/endpoints/collecting/score", json={"data": {"a": [n], "b": [1]}}, headers=headers, timeout=60
        )
        assert answer.status_code == 200, answer.text
        ids.append(answer.headers["x-request-id"])

    rows: list[dict[str, object]] = []
    deadline = time.monotonic() + 15
    while len(rows) < 20 and time.monotonic() < deadline:
        time.sleep(0.3)
        listed = scorehost("deployments", "data", "collecting", "blue").stdout
        rows = [json.loads(line) for line in listed.splitlines()]
    assert len(rows) == 20
    for request_id in ids:  # the gateway's x-request-id joins the four rows of each request
        types = sorted(str(row["type"]) for row in rows if row["correlationid"] == request_id)
        assert types == [
            f"azureml.inference.{name}" for name in ("model_inputs", "model_outputs", "request", "response")
        ]
    assert {row["source"] for row in rows} == {"/endpoints/collecting/deployments/blue"}
    assert {row["deploymentversion"] for row in rows} == {"1"}  # the generation that answered
    request_rows = [row for row in rows if row["type"] == "azureml.inference.request"]
    assert all(row["headers"] == {"x-client-id": "shop-7"} for row in request_rows)  # never the key
    home = Path(os.environ["SCOREHOST_HOME"])
    files = list((home / "collected" / "collecting" / "blue" / "model_inputs").rglob("*.jsonl"))
    assert files  # Azure's layout: collection/yyyy/MM/dd/HH/instance.jsonl
    assert not any(key_of("collecting") in path.read_text() for path in home.joinpath("collected").rglob("*.jsonl"))

    csv = scorehost("deployments", "data", "collecting", "blue", "--collection", "model_inputs", "--format", "csv")
    table = pd.read_csv(io.StringIO(csv.stdout))
    assert sorted(table["a"]) == [0, 1, 2, 3, 4]
    assert set(table["correlationid"]) == set(ids)
    parquet = tmp_path / "outputs.parquet"
    scorehost(
        "deployments", "data", "collecting", "blue", "--collection", "model_outputs", "--since", "1h",
        "--format", "parquet", "-o", str(parquet),
    )  # fmt: skip
    assert sorted(pd.read_parquet(parquet)["total"]) == [1, 2, 3, 4, 5]
    nothing = scorehost("deployments", "data", "collecting", "blue", "--until", "2000-01-01T00:00:00Z")
    assert nothing.stdout == ""
    missing = scorehost("deployments", "data", "collecting", "green", code=1)
    assert "green" in missing.stderr
