"""The control plane's REST API over a real socket: auth, validation, status codes, the OpenAPI document."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from _control_plane import TOKEN, RecordingDeployer, api_server
from hypothesis import given, settings
from hypothesis import strategies as st
from openapi_spec_validator import validate

from scorehost.config import ServeSettings
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
        ("PATCH", "/api/v1/endpoints/mnist", {"tags": False}, 400, "tags must map names to strings"),
        ("PATCH", "/api/v1/endpoints/mnist", {"tags": []}, 400, "tags must map names to strings"),
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


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"workers=3": True}, "'workers=3' is not a serve option"),
        ({"uds": "@name"}, "serve option 'uds' is set by the control plane"),
        ({"workers": 3}, "serve option 'workers' is set by the control plane"),
        ({"host": "0.0.0.0"}, "serve option 'host' is set by the control plane"),
        ({"port": 80}, "serve option 'port' is set by the control plane"),
        ({"model-dir": "/"}, "serve option 'model-dir' is set by the control plane"),
        ({"timeout --workers": 3}, "'timeout --workers' is not a serve option"),
        ({"timeout": "5 --workers=3"}, "serve option 'timeout': Input should be a valid number"),
        ({"threads": 0}, "serve option 'threads': Input should be greater than or equal to 1"),
        ({"service_name": "a\u0000b"}, "serve option 'service_name' holds a NUL character"),
        ([["timeout", 5]], "serve_options must be an object"),
    ],
)
def test_serve_options_are_checked_against_the_servers_settings(
    api: tuple[httpx.Client, RecordingDeployer], code: Path, options: Any, message: str
) -> None:
    """Issue 16.11: a key like "workers=3" or "uds" became a flag that overrode what the control plane sets."""
    client, deployer = api
    client.post("/api/v1/endpoints", json={"name": "mnist"})
    spec = {"name": "blue", "script": "score.py", "code_dir": str(code), "serve_options": options}
    answer = client.post("/api/v1/endpoints/mnist/deployments", json=spec)
    assert answer.status_code == 400, answer.text
    assert message in answer.json()["error"]
    assert client.get("/api/v1/endpoints/mnist/deployments").json() == []
    assert [call for call in deployer.calls if call[0] == "deploy"] == []


def test_good_serve_options_are_stored_by_field_name(api: tuple[httpx.Client, RecordingDeployer], code: Path) -> None:
    client, _ = api
    client.post("/api/v1/endpoints", json={"name": "mnist"})
    options = {"timeout": 5, "max-body-size": "1MiB", "preload": True, "run_input": "data"}
    spec = {"name": "blue", "script": "score.py", "code_dir": str(code), "serve_options": options}
    created = client.post("/api/v1/endpoints/mnist/deployments", json=spec)
    assert created.status_code == 201, created.text
    assert created.json()["serve_options"] == {
        "timeout": 5,
        "max_body_size": "1MiB",
        "preload": True,
        "run_input": "data",
    }
    refused = client.put("/api/v1/endpoints/mnist/deployments/blue", json={"serve_options": {"uds": "@x"}})
    assert refused.status_code == 400


@pytest.mark.parametrize(
    ("path", "body", "message"),
    [
        ("traffic", {"traffic": {"blue": 100}, "mirror": {"deployment": "blue", "percent": "abc"}}, "'mirror.percent'"),
        ("traffic", {"traffic": {"blue": 100}, "mirror": {"deployment": "blue", "percent": 1.5}}, "'mirror.percent'"),
        ("traffic", {"traffic": {"blue": 100}, "mirror": {"deployment": 7, "percent": 5}}, "'mirror.deployment'"),
        ("traffic", {"traffic": {"blue": True}}, "'traffic' must map deployment names to whole percentages"),
        ("traffic", {"traffic": {"blue": 100}, "mirror": "blue"}, "'mirror' must be"),
        ("deployments", {"environment": "A=1"}, "'environment' must be an object"),
        ("deployments", {"environment": ["A=1"]}, "'environment' must be an object"),
        ("deployments", {"environment": {"A": 1}}, "environment: the value of A must be a string, not int"),
        ("deployments", {"environment": {"A": None}}, "environment: the value of A must be a string"),
        ("deployments", {"environment": {"A": "x\u0000y"}}, "environment: the value of A holds a NUL character"),
        ("deployments", {"environment": {"A\u0000": "x"}}, "is not an environment variable name"),
        ("deployments", {"instances": True}, "'instances' must be a whole number"),
        ("deployments", {"backend": ["local"]}, "'backend' must be 'local' or 'ray'"),
        ("deployments", {"code_dir": "/tmp/\u0000"}, "give the deployment a 'code_dir'"),
        ("deployments", {"code_dir": "/" + "x" * 5000}, "give the deployment a 'code_dir'"),
        ("deployments", {"script": "a\u0000.py"}, "give the deployment a 'script'"),
        ("deployments", {"ray": {"address": "127.0.0.1:6379", "ingress": 5}}, "ingress"),
    ],
)
def test_bad_fields_are_400s_that_name_the_field(
    api: tuple[httpx.Client, RecordingDeployer], code: Path, path: str, body: dict[str, Any], message: str
) -> None:
    """Issue 16.14: these were 500s (a mirror percent of "abc", an environment that is not an object) or were
    accepted and failed when the deployment started (variables that are not strings, or hold a NUL)."""
    client, _ = api
    client.post("/api/v1/endpoints", json={"name": "mnist"})
    good = {"name": "blue", "script": "score.py", "code_dir": str(code)}
    assert client.post("/api/v1/endpoints/mnist/deployments", json=good).status_code == 201
    if path == "traffic":
        answer = client.put("/api/v1/endpoints/mnist/traffic", json=body)
    else:
        answer = client.post("/api/v1/endpoints/mnist/deployments", json={**good, "name": "green", **body})
    assert answer.status_code == 400, answer.text
    assert message in answer.json()["error"]


def test_an_unexpected_error_is_a_500_that_sends_no_details(api: tuple[httpx.Client, RecordingDeployer]) -> None:
    client, deployer = api

    def broken() -> None:
        raise RuntimeError("/secret/path/registry.db is locked by pid 7")

    deployer.routes_changed = broken  # type: ignore[method-assign]
    answer = client.post("/api/v1/endpoints", json={"name": "mnist"})
    assert answer.status_code == 500
    assert "/secret/path" not in answer.text
    assert "the control plane failed; its log" in answer.json()["error"]


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=12), inner, max_size=3),
    max_leaves=6,
)
_FIELDS = ["name", "script", "code_dir", "models", "instances", "environment", "serve_options", "backend", "ray"]
_OPTION_NAMES = st.sampled_from(sorted(ServeSettings.model_fields)) | st.text(max_size=12)


def test_one_bad_field_in_a_good_request_is_never_a_server_error(tmp_path: Path, code: Path) -> None:
    """Bounded fuzzing, one field at a time, inside bodies that are otherwise valid (so each value reaches the
    check of its own field): deployments, their serve options and environment, traffic and mirrors."""
    good = {"name": "green", "script": "score.py", "code_dir": str(code)}
    with (
        api_server(tmp_path) as (address, _),
        httpx.Client(base_url=address.api, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30) as client,
    ):
        client.post("/api/v1/endpoints", json={"name": "mnist"})
        client.post("/api/v1/endpoints/mnist/deployments", json={**good, "name": "blue"})

        def send(method: str, path: str, body: Any) -> httpx.Response:
            content = json.dumps(body).encode()  # NaN and Infinity too, as Python's json reads them
            return client.request(method, path, content=content, headers={"Content-Type": "application/json"})

        @settings(max_examples=300, derandomize=True, database=None, deadline=None)
        @given(
            field=st.sampled_from(_FIELDS),
            value=_JSON,
            options=st.dictionaries(_OPTION_NAMES, _JSON, max_size=2),
            environment=st.dictionaries(st.text(max_size=8), _JSON, max_size=2),
            mirror=st.dictionaries(st.sampled_from(["deployment", "percent"]), _JSON, max_size=2),
            update=st.booleans(),
        )
        def fuzz(field: str, value: Any, options: Any, environment: Any, mirror: Any, update: bool) -> None:
            body = {**good, field: value, "serve_options": options, "environment": environment}
            if update:
                body.pop("name")
                answers = [send("PUT", "/api/v1/endpoints/mnist/deployments/blue", body)]
            else:
                answers = [send("POST", "/api/v1/endpoints/mnist/deployments", body)]
                client.delete("/api/v1/endpoints/mnist/deployments/green")
            traffic = {"traffic": {"blue": 100}, "mirror": mirror}
            answers.append(send("PUT", "/api/v1/endpoints/mnist/traffic", traffic))
            for answer in answers:
                assert answer.status_code < 500, f"{body} -> {answer.status_code} {answer.text}"
                assert answer.status_code < 400 or isinstance(answer.json()["error"], str)

        fuzz()
