"""The control plane's REST API over a real socket: auth, validation, status codes, the OpenAPI document."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from _control_plane import TOKEN, RecordingDeployer, api_server
from openapi_spec_validator import validate

from scorehost.deploy.controlplane.openapi import document


@pytest.fixture
def api(tmp_path: Path) -> Iterator[tuple[httpx.Client, RecordingDeployer]]:
    with api_server(tmp_path) as (address, deployer):
        headers = {"Authorization": f"Bearer {TOKEN}"}
        with httpx.Client(base_url=address.api, headers=headers, timeout=10) as client:
            yield client, deployer


@pytest.fixture
def code(tmp_path: Path) -> Path:
    folder = tmp_path / "code"
    folder.mkdir()
    (folder / "score.py").write_text("def init():\n    pass\n\ndef run(data):\n    return data\n")
    return folder


def test_every_request_needs_the_token(api: tuple[httpx.Client, RecordingDeployer]) -> None:
    client, _ = api
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"}):
        answer = httpx.get(client.base_url.join("/api/v1/endpoints"), headers=headers)
        assert answer.status_code == 401
        assert answer.headers["www-authenticate"] == "Bearer"
        assert "control-plane token" in answer.json()["error"]
        assert TOKEN not in answer.text
    assert client.get("/api/v1/health").json()["status"] == "ok"


def test_endpoint_lifecycle(api: tuple[httpx.Client, RecordingDeployer]) -> None:
    client, deployer = api
    created = client.post("/api/v1/endpoints", json={"name": "mnist"})
    assert created.status_code == 201
    body = created.json()
    assert body["scoring_uri"] == "http://127.0.0.1:5080/endpoints/mnist/score"
    assert "keys" not in body
    assert client.post("/api/v1/endpoints", json={"name": "mnist"}).status_code == 409
    keys = client.get("/api/v1/endpoints/mnist/keys").json()
    rotated = client.post("/api/v1/endpoints/mnist/keys/regenerate", json={"key": "secondary"}).json()
    assert rotated["primary"] == keys["primary"]
    assert rotated["secondary"] != keys["secondary"]
    assert [e["name"] for e in client.get("/api/v1/endpoints").json()] == ["mnist"]
    assert client.delete("/api/v1/endpoints/mnist").status_code == 204
    missing = client.get("/api/v1/endpoints/mnist")
    assert missing.status_code == 404
    assert (
        missing.json()["error"]
        == "no endpoint named 'mnist' (there are no endpoints yet); `scorehost endpoints create mnist`"
    )
    assert ("routes", "") in deployer.calls


def test_deployments_traffic_and_logs(api: tuple[httpx.Client, RecordingDeployer], code: Path) -> None:
    client, deployer = api
    client.post("/api/v1/endpoints", json={"name": "mnist"})
    spec = {"name": "blue", "script": "score.py", "code_dir": str(code), "models": ["m:1"], "instances": 2}
    created = client.post("/api/v1/endpoints/mnist/deployments", json=spec)
    assert created.status_code == 201, created.text
    assert created.json()["generation"] == 1
    assert created.json()["status"] == {"state": "ready"}
    client.post("/api/v1/endpoints/mnist/deployments", json={**spec, "name": "green"})
    updated = client.put("/api/v1/endpoints/mnist/deployments/blue", json={"instances": 3})
    assert (updated.json()["generation"], updated.json()["instances"]) == (2, 3)
    assert updated.json()["models"] == ["m:1"]  # unchanged fields are kept
    assert [c for c in deployer.calls if c[0] == "deploy"] == [
        ("deploy", "blue@1"),
        ("deploy", "green@1"),
        ("deploy", "blue@2"),
    ]

    bad = client.put("/api/v1/endpoints/mnist/traffic", json={"traffic": {"blue": 90, "green": 20}})
    assert bad.status_code == 400
    assert bad.json()["error"] == "traffic must sum to 100, not 110 (blue=90, green=20)"
    good = client.put("/api/v1/endpoints/mnist/traffic", json={"traffic": {"blue": 90, "green": 10}})
    assert good.json()["traffic"] == {"blue": 90, "green": 10}
    shown = client.get("/api/v1/endpoints/mnist").json()
    assert [d["name"] for d in shown["deployments"]] == ["blue", "green"]

    assert client.get("/api/v1/endpoints/mnist/deployments/blue/logs?lines=3").text == "line 0\nline 1\nline 2\n"
    refused = client.delete("/api/v1/endpoints/mnist/deployments/green")
    assert refused.status_code == 400
    assert "takes 10% of the traffic; move it first" in refused.json()["error"]
    client.put("/api/v1/endpoints/mnist/traffic", json={"traffic": {"blue": 100, "green": 0}})
    assert client.delete("/api/v1/endpoints/mnist/deployments/green").status_code == 204
    assert ("retire", "green") in deployer.calls


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "message"),
    [
        ("POST", "/api/v1/endpoints", {"name": "x"}, 400, "is not a valid endpoint name"),
        ("POST", "/api/v1/endpoints", {}, 400, "give the endpoint a 'name'"),
        ("POST", "/api/v1/endpoints", {"name": "mnist2", "auth": "token"}, 400, "auth must be 'key' or 'none'"),
        ("POST", "/api/v1/endpoints/mnist/deployments", {"name": "blue"}, 400, "give the deployment a 'script'"),
        ("POST", "/api/v1/endpoints/nope/deployments", {"name": "blue"}, 400, "give the deployment a 'script'"),
        ("GET", "/api/v1/endpoints/mnist/deployments/red", None, 404, "has no deployment 'red'"),
        ("PUT", "/api/v1/endpoints/mnist/traffic", {"traffic": {"red": 100}}, 400, "has no deployment 'red'"),
        ("PUT", "/api/v1/endpoints/mnist/traffic", {"traffic": {"blue": "all"}}, 400, "whole percentages"),
        ("POST", "/api/v1/endpoints/mnist/keys/regenerate", {"key": "third"}, 400, "'primary' or 'secondary'"),
        ("GET", "/api/v1/nothing", None, 404, "no API route /api/v1/nothing"),
        ("PATCH", "/api/v1/endpoints", None, 405, "PATCH is not allowed on /api/v1/endpoints"),
    ],
)
def test_bad_requests_get_4xx_with_a_message(
    api: tuple[httpx.Client, RecordingDeployer], method: str, path: str, body: Any, status: int, message: str
) -> None:
    client, _ = api
    client.post("/api/v1/endpoints", json={"name": "mnist"})
    answer = client.request(method, path, json=body)
    assert answer.status_code == status, answer.text
    assert message in answer.json()["error"]


def test_malformed_and_oversized_bodies(api: tuple[httpx.Client, RecordingDeployer], code: Path) -> None:
    client, _ = api
    answer = client.post("/api/v1/endpoints", content=b"{not json", headers={"Content-Type": "application/json"})
    assert answer.status_code == 400
    assert answer.json()["error"].startswith("the request body is not JSON")
    assert client.post("/api/v1/endpoints", json=[1, 2]).json()["error"] == "the request body must be a JSON object"
    huge = client.post("/api/v1/endpoints", content=b" " * (2 << 20), headers={"Content-Type": "application/json"})
    assert huge.status_code == 413
    client.post("/api/v1/endpoints", json={"name": "mnist"})
    outside = {"name": "blue", "script": "../score.py", "code_dir": str(code)}
    assert "outside the code folder" in client.post("/api/v1/endpoints/mnist/deployments", json=outside).text
    missing = {"name": "blue", "script": "nope.py", "code_dir": str(code)}
    assert "does not exist" in client.post("/api/v1/endpoints/mnist/deployments", json=missing).json()["error"]


def test_the_openapi_document_is_valid_and_served(api: tuple[httpx.Client, RecordingDeployer]) -> None:
    client, _ = api
    served = client.get("/openapi.json").json()
    validate(served)
    assert served == document()
    assert set(served["paths"]) >= {"/api/v1/endpoints", "/api/v1/endpoints/{name}/deployments/{deployment}"}
