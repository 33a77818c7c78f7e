"""What the server answers: results of every kind, run() failures, request ids and routes."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator

import httpx
import pytest
from conftest import SCRIPTS, served

from scorehost.http.pipeline import RUN_FAILED_MESSAGE

EXEC_MS = re.compile(r"^\d+\.\d{3}$")


@pytest.fixture(scope="module")
def echo() -> Iterator[httpx.Client]:
    with served("echo.py") as server, server.client() as client:
        yield client


# --- results -------------------------------------------------------------------------------------


def test_numpy_and_pandas_results_need_no_conversion() -> None:
    with served("returns_numpy.py") as server, server.client() as client:
        response = client.post("/score", json={"data": 1})
    assert response.status_code == 200, server.log
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {
        "array": [[0.0, 0.5, 1.0], [1.5, 2.0, 2.5]],
        "ints": [1, 2, 3],
        "scalar": 1.5,
        "count": 7,
        "flag": True,
        "series": [1, 2],
        "frame": [{"a": 1, "b": "x"}, {"a": 2, "b": "y"}],
    }


@pytest.fixture(scope="module")
def plain() -> Iterator[httpx.Client]:
    with served("returns_plain.py") as server, server.client() as client:
        yield client


@pytest.mark.parametrize(
    ("name", "body", "content_type"),
    [
        ("none", b"{}", "application/json"),  # None is an empty object, as on the reference
        ("string", b'"hello"', "application/json"),  # strings are JSON-quoted
        ("json-string", b'"{\\"already\\": \\"json\\"}"', "application/json"),  # and never parsed
        ("tuple", b'[1,"two"]', "application/json"),
        ("bytes", b"\x00\x01binary", "application/octet-stream"),
    ],
)
def test_plain_results(plain: httpx.Client, name: str, body: bytes, content_type: str) -> None:
    response = plain.post("/score", json={"data": name})
    assert response.status_code == 200
    assert response.content == body
    assert response.headers["content-type"] == content_type


def test_unicode_result_round_trips(plain: httpx.Client) -> None:
    assert plain.post("/score", json={"data": "unicode"}).json() == {"text": "caf\u00e9 \u2603"}


def test_unserializable_result_is_a_distinct_500_naming_the_type() -> None:
    with served("unserializable.py") as server, server.client() as client:
        response = client.post("/score", json={"data": 1}, headers={"x-request-id": "unserializable-1"})
    assert response.status_code == 500
    message = response.json()["message"]
    assert message.startswith("run() returned a value that cannot be sent as JSON")
    assert "entry_module.Opaque" in message
    assert response.headers["x-ms-run-function-failed"] == "False"  # run() itself succeeded
    assert "x-ms-run-fn-exec-ms" not in response.headers
    server.wait_for_log(r"ERROR .*\[unserializable-1\] run\(\) returned a value that cannot be sent as JSON")


def test_run_raising_is_a_500_with_the_message_and_the_traceback_in_the_log() -> None:
    with served("run_raises.py") as server, server.client() as client:
        response = client.post("/score", json={"data": 42}, headers={"x-request-id": "raises-1"})
        assert response.status_code == 500
        # The generic message (the reference's words); what run() raised is in the log only.
        assert response.json() == {"message": RUN_FAILED_MESSAGE}
        assert response.headers["x-ms-run-function-failed"] == "True"
        assert "x-ms-run-fn-exec-ms" not in response.headers
        assert response.headers["x-request-id"] == "raises-1"
        server.wait_for_log(r"\[raises-1\] run\(\) raised ValueError: cannot score 42")
        server.wait_for_log(rf'File "{re.escape(str(SCRIPTS.resolve() / "run_raises.py"))}", line 9, in check')
        # The worker keeps serving after a failure.
        assert client.post("/score", json={"data": 1}).status_code == 500
        assert client.get("/ready").status_code == 200


@pytest.mark.parametrize(("args", "env"), [(("--debug-errors",), None), ((), {"SCOREHOST_DEBUG_ERRORS": "true"})])
def test_debug_errors_send_what_run_raised(args: tuple[str, ...], env: dict[str, str] | None) -> None:
    with served("run_raises.py", *args, env=env) as server, server.client() as client:
        response = client.post("/score", json={"data": 42}, headers={"x-request-id": "debug-1"})
        assert response.status_code == 500
        assert response.json() == {"message": "run() raised ValueError: cannot score 42"}
        assert response.headers["x-ms-run-function-failed"] == "True"
        server.wait_for_log(r"WARNING .*--debug-errors is on")
        server.wait_for_log(r"\[debug-1\] run\(\) raised ValueError: cannot score 42")


def test_request_headers_parameter() -> None:
    with served("request_headers.py") as server, server.client() as client:
        response = client.post("/score", json={"data": [1]}, headers={"X-Custom": "abc", "x-request-id": "hdr-1"})
    assert response.status_code == 200
    result = response.json()
    assert result["data"] == "[1]"
    headers = result["headers"]
    assert headers["X-Custom"] == "abc"
    assert headers["Content-Type"] == "application/json"
    assert headers["X-Request-Id"] == "hdr-1"
    assert headers["Host"] == server.url.removeprefix("http://")
    assert result["lower_case_lookup"] is None  # a plain dict with Title-Case keys, as on the reference


# --- request ids and headers ---------------------------------------------------------------------


def test_success_headers(echo: httpx.Client) -> None:
    response = echo.post("/score", json={"data": 1})
    assert response.headers["x-ms-run-function-failed"] == "False"
    assert EXEC_MS.match(response.headers["x-ms-run-fn-exec-ms"])
    assert response.headers["x-ms-server-version"].startswith("scorehost/")
    request_id = response.headers["x-request-id"]
    assert uuid.UUID(request_id).version == 4
    assert response.headers["x-ms-request-id"] == request_id
    assert "x-ms-client-request-id" not in response.headers
    assert "traceid" not in response.headers


def test_request_ids_are_echoed(echo: httpx.Client) -> None:
    response = echo.post("/score", json={"data": 1}, headers={"x-request-id": "r-1", "TraceId": "t-1"})
    assert response.headers["x-request-id"] == "r-1"
    assert response.headers["x-ms-request-id"] == "r-1"
    assert response.headers["traceid"] == "t-1"


def test_client_request_id(echo: httpx.Client) -> None:
    response = echo.post("/score", json={"data": 1}, headers={"x-ms-client-request-id": "c-1"})
    assert uuid.UUID(response.headers["x-request-id"])
    assert response.headers["x-ms-request-id"] == "c-1"
    assert response.headers["x-ms-client-request-id"] == "c-1"


def test_all_three_ids(echo: httpx.Client) -> None:
    sent = {"x-request-id": "r", "x-ms-request-id": "m", "x-ms-client-request-id": "c"}
    response = echo.post("/score", json={"data": 1}, headers=sent)
    assert {name: response.headers[name] for name in sent} == sent


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("x-request-id", "x-request-id must not exceed 100 characters"),
        ("x-ms-request-id", "x-ms-request-id and x-ms-client-request-id must not exceed 100 characters"),
        ("x-ms-client-request-id", "x-ms-request-id and x-ms-client-request-id must not exceed 100 characters"),
    ],
)
def test_request_id_too_long_is_431(echo: httpx.Client, header: str, message: str) -> None:
    assert echo.post("/score", json={"data": 1}, headers={header: "x" * 100}).status_code == 200
    response = echo.post("/score", json={"data": 1}, headers={header: "x" * 101})
    assert response.status_code == 431
    assert response.json() == {"message": message}


# --- routes --------------------------------------------------------------------------------------


def test_liveness_and_readiness(echo: httpx.Client) -> None:
    live = echo.get("/", params={"ignored": 1})
    assert (live.status_code, live.text) == (200, "Healthy")
    assert live.headers["content-type"].startswith("text/plain")
    head = echo.head("/")
    assert (head.status_code, head.content) == (200, b"")
    assert echo.get("/ready").json() == {"status": "ready"}


def test_options_score(echo: httpx.Client) -> None:
    response = echo.options("/score")
    assert (response.status_code, response.content) == (200, b"")
    assert response.headers["allow"] == "GET, POST, OPTIONS"


@pytest.mark.parametrize("path", ["/nope", "/score/", "/v1/models", "/swagger"])
def test_unknown_path_is_a_json_404(echo: httpx.Client, path: str) -> None:
    response = echo.post(path, json={"data": 1})
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/json"
    assert response.json()["message"].startswith(f"No route {path}.")


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("PUT", "/score", "GET, POST, OPTIONS"),
        ("DELETE", "/score", "GET, POST, OPTIONS"),
        ("HEAD", "/score", "GET, POST, OPTIONS"),
        ("POST", "/", "GET, HEAD, OPTIONS"),
        ("PATCH", "/ready", "GET, HEAD, OPTIONS"),
    ],
)
def test_wrong_method_is_a_json_405_with_allow(echo: httpx.Client, method: str, path: str, allow: str) -> None:
    response = echo.request(method, path)
    assert response.status_code == 405
    assert response.headers["allow"] == allow
    if method != "HEAD":
        assert response.json() == {"message": f"{method} is not allowed on {path}; use {allow}."}


def test_score_over_get_and_post(echo: httpx.Client) -> None:
    assert echo.get("/score", params={"data": "[1]"}).json() == {"received": "[1]"}
    assert echo.post("/score", json={"data": [1]}).json() == {"received": "[1]"}
