"""Typed (@input_schema) entry scripts and their API documents, served by a real `scorehost serve` process."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from conftest import SCRIPTS, Server, served
from openapi_spec_validator import validate

Serve = Callable[..., Server]


@pytest.fixture(scope="module")
def numpy_model() -> Iterator[Server]:
    with served("typed_sklearn_numpy.py") as server:
        yield server


@pytest.fixture(scope="module")
def power_bi() -> Iterator[Server]:
    with served("typed_power_bi.py") as server:
        yield server


def test_the_worker_says_how_it_calls_run(numpy_model: Server) -> None:
    # The worker writes the line after it reports ready: wait for it rather than read the log once.
    numpy_model.wait_for_log(r"input: run\(\) is decorated with @input_schema")
    numpy_model.wait_for_log(r"run\(\) is decorated with @input_schema: it gets data from the JSON body")


def test_numpy_parameter_is_converted_and_scored(numpy_model: Server) -> None:
    with numpy_model.client() as client:
        response = client.post("/score", json={"data": [[1, 2], [-3, -1]]})
    assert response.status_code == 200
    assert response.json() == [1, 0]
    assert response.headers["x-ms-run-function-failed"] == "False"
    assert float(response.headers["x-ms-run-fn-exec-ms"]) >= 0


def test_get_reads_the_parameters_from_the_query(numpy_model: Server) -> None:
    with numpy_model.client() as client:
        response = client.get("/score", params={"data": "[[2.0, 2.0]]"})
    assert response.status_code == 200
    assert response.json() == [1]


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
def test_a_body_that_is_not_json_is_415(numpy_model: Server, content_type: str | None) -> None:
    headers = {"content-type": content_type} if content_type else {}
    with numpy_model.client() as client:
        response = client.post("/score", content=b'{"data": [[1, 2]]}', headers=headers)
    assert response.status_code == 415
    assert response.json()["message"].startswith("Expects Content-Type to be application/json")
    assert response.headers["x-ms-run-function-failed"] == "False"


def test_a_missing_parameter_is_400_naming_it(numpy_model: Server) -> None:
    with numpy_model.client() as client:
        response = client.post("/score", json={"rows": [[1, 2]]})
    assert response.status_code == 400
    assert response.json() == {"message": "A value is not provided for the 'data' parameter."}


def test_an_unconvertible_value_is_400_naming_the_parameter_and_the_reason(numpy_model: Server) -> None:
    # The reference answers 500 "An unexpected error occurred in scoring script" here.
    with numpy_model.client() as client:
        response = client.post("/score", json={"data": [[1, 2, 3]]})
    assert response.status_code == 400
    message = response.json()["message"]
    assert "'data'" in message
    assert "array has size 3 on dimension #1, while expected value is 2" in message
    assert response.headers["x-ms-run-function-failed"] == "False"


@pytest.mark.parametrize(
    ("body", "start"),
    [
        (b"", "POST body is empty"),
        (b'{"data": [[1, 2]', "POST body could not be decoded as JSON"),
        (b"[[1, 2]]", "POST body should be a JSON dictionary"),
    ],
)
def test_bodies_that_are_not_a_json_object_are_400(numpy_model: Server, body: bytes, start: str) -> None:
    with numpy_model.client() as client:
        response = client.post("/score", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert response.json()["message"].startswith(start)


def test_power_bi_inputs_and_global_parameters(power_bi: Server) -> None:
    body = {"Inputs": {"input1": [{"x": 1.0, "y": 0.5}, {"x": 2.0, "y": 1.5}]}, "GlobalParameters": 2.0}
    with power_bi.client() as client:
        response = client.post("/score", json=body)
        missing = client.post("/score", json={"Inputs": body["Inputs"]})
    assert response.status_code == 200
    assert response.json() == {"Results": [3.0, 7.0]}
    assert missing.status_code == 400
    assert missing.json() == {"message": "A value is not provided for the 'GlobalParameters' parameter."}


def test_pandas_records_arrive_as_a_dataframe(serve: Serve) -> None:
    server = serve("typed_pandas_records.py")
    with server.client() as client:
        rows = [{"age": 40, "income": 50000.0, "city": "Oslo"}, {"age": 20, "income": 30000.0, "city": "Lima"}]
        response = client.post("/score", json={"frame": rows})
    assert response.status_code == 200
    assert response.json() == [1250.0, 1500.0]


def test_request_headers_come_from_the_request_not_the_body(serve: Serve) -> None:
    server = serve("typed_request_headers.py")
    with server.client() as client:
        response = client.post(
            "/score", json={"data": [1.5, 2.5], "request_headers": {"X-Custom": "forged"}}, headers={"x-custom": "real"}
        )
    assert response.status_code == 200
    assert response.json() == {"total": 4.0, "custom": "real"}


def test_a_decorator_that_cannot_work_stops_start_up_naming_it(serve: Serve) -> None:
    server = serve("typed_wrong_param_name.py", ready=False)
    assert server.wait_exit() == 3
    assert "input_schema" in server.log
    assert "'input'" in server.log


# --- /swagger.json and /docs -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("version", "key", "value"), [(None, "swagger", "2.0"), ("3", "openapi", "3.0.3"), ("3.1", "openapi", "3.1.0")]
)
def test_swagger_documents_are_valid_and_describe_the_schema(
    numpy_model: Server, version: str | None, key: str, value: str
) -> None:
    params = {"version": version} if version else {}
    with numpy_model.client() as client:
        response = client.get("/swagger.json", params=params)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    document = response.json()
    assert document[key] == value
    validate(document)
    schemas = document["definitions"] if version is None else document["components"]["schemas"]
    data = schemas["ServiceInput"]["properties"]["data"]
    assert data["type"] == "array"
    assert data["format"] == "numpy.ndarray"
    assert schemas["ServiceInput"]["example"] == {"data": [[1.0, 2.0], [-1.0, -0.5]]}


def test_an_unknown_swagger_version_is_404_with_the_reference_message(numpy_model: Server) -> None:
    with numpy_model.client() as client:
        response = client.get("/swagger.json", params={"version": "4"})
    assert response.status_code == 404
    assert response.json() == {"message": "Swagger version [4] is not valid. Supported versions: [2, 3, 3.1]."}


def test_the_docs_page_and_its_assets_are_served(numpy_model: Server) -> None:
    with numpy_model.client() as client:
        page = client.get("/docs")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert "swagger.json?version=3" in page.text
        script = client.get("/docs/swagger-ui-bundle.js")
        assert script.status_code == 200
        assert "javascript" in script.headers["content-type"]
        assert client.get("/docs/%2e%2e/pyproject.toml").status_code == 404


def test_the_example_in_the_document_scores(numpy_model: Server) -> None:
    """What Swagger UI pre-fills for "Try it out" is a request the server accepts."""
    with numpy_model.client() as client:
        document = client.get("/swagger.json", params={"version": "3"}).json()
        operation = document["paths"]["/score"]["post"]
        content = operation["requestBody"]["content"]["application/json"]
        example = content.get("example") or document["components"]["schemas"]["ServiceInput"]["example"]
        response = client.post("/score", content=json.dumps(example), headers={"content-type": "application/json"})
    assert response.status_code == 200
    assert response.json() == [1, 0]


def test_plain_scripts_have_documents_too(serve: Serve) -> None:
    server = serve("echo.py")
    with httpx.Client(base_url=server.url) as client:
        for version in ("2", "3", "3.1"):
            document = client.get("/swagger.json", params={"version": version}).json()
            validate(document)


def test_a_scripts_own_parameter_type_converts_and_refuses(serve: Serve) -> None:
    server = serve("typed_abstract_parameter.py")
    with server.client() as client:
        as_list = client.post("/score", json={"point": [3, 4]})
        as_text = client.post("/score", json={"point": "6,8"})
        refused = client.post("/score", json={"point": [1, 2, 3]})
        document = client.get("/swagger.json", params={"version": "3"}).json()
    assert as_list.json() == {"magnitude": 5.0, "type": "complex"}
    assert as_text.json() == {"magnitude": 10.0, "type": "complex"}
    assert refused.status_code == 400
    assert "'point'" in refused.json()["message"]
    assert "expected [x, y]" in refused.json()["message"]
    validate(document)
    assert document["components"]["schemas"]["ServiceInput"]["example"] == {"point": [3.0, 4.0]}


@pytest.mark.parametrize("preload", [False, True])
def test_an_unreadable_swagger_file_of_the_user_stops_start_up(serve: Serve, tmp_path: Path, preload: bool) -> None:
    app = tmp_path / "app"
    app.mkdir()
    (app / "score.py").write_text((SCRIPTS / "echo.py").read_text())
    (app / "swagger2.json").write_text("{not json")
    server = serve(app / "score.py", *(["--preload"] if preload else []), ready=False)
    assert server.wait_exit() == 3
    assert "swagger2.json" in server.log
