"""What `run()` receives under each `run_input` mode, over real sockets, and `auto` on every kind of script."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from conftest import SCRIPTS, Server, served

from scorehost.http.pipeline import RUN_FAILED_MESSAGE

FORM = {"content-type": "application/x-www-form-urlencoded"}  # what `curl -d` sends


@pytest.fixture(scope="module")
def auto() -> Iterator[httpx.Client]:
    with served("echo.py") as server, server.client() as client:
        yield client


@pytest.fixture(scope="module")
def data_server() -> Iterator[Server]:
    with served("echo.py", env={"SCOREHOST_RUN_INPUT": "data"}) as server:
        yield server


@pytest.fixture(scope="module")
def data(data_server: Server) -> Iterator[httpx.Client]:
    with data_server.client() as client:
        yield client


@pytest.fixture(scope="module")
def body_server() -> Iterator[Server]:
    with served("echo.py", "--run-input", "body") as server:
        yield server


@pytest.fixture(scope="module")
def body(body_server: Server) -> Iterator[httpx.Client]:
    with body_server.client() as client:
        yield client


def received(response: httpx.Response) -> object:
    assert response.status_code == 200, response.text
    return response.json()["received"]


# --- data: the documented contract ---------------------------------------------------------------


def test_data_mode_passes_the_json_text_of_the_data_value(data: httpx.Client, data_server: Server) -> None:
    assert received(data.post("/score", json={"data": [[1, 2], [3, 4]]})) == "[[1,2],[3,4]]"
    assert received(data.post("/score", content=b'{"data": {"a": 1}, "other": 2}')) == '{"a":1}'
    assert received(data.post("/score", content=b'{"data": "text"}')) == '"text"'
    assert received(data.post("/score", content=b'{"data": null}')) == "null"
    assert 'run() receives the JSON text of the body\'s "data" value (set by run_input=data)' in data_server.log


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"{not json", "The body is not valid JSON ("),
        (b"", "The body is empty"),
        (b"   ", "The body is empty"),
        (b"[1, 2]", "The body is a JSON array, not an object"),
        (b'"data"', "The body is a JSON string, not an object"),
        (b'{"rows": [1], "x": 2}', "The body has no \"data\" key (keys: 'rows', 'x')"),
    ],
    ids=["malformed", "empty", "blank", "array", "string", "no-data-key"],
)
def test_data_mode_refuses_other_bodies_with_400(data: httpx.Client, content: bytes, message: str) -> None:
    response = data.post("/score", content=content, headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert message in response.json()["message"]
    assert 'expects a JSON object such as {"data": [[1, 2, 3]]}' in response.json()["message"]
    assert response.headers["x-ms-run-function-failed"] == "False"


def test_data_mode_get_reads_the_data_query_parameter(data: httpx.Client) -> None:
    assert received(data.get("/score", params={"data": "[[1,2]]", "other": "x"})) == "[[1,2]]"
    response = data.get("/score", params={"rows": "[1]"})
    assert response.status_code == 400
    assert 'GET /score needs a "data" query parameter' in response.json()["message"]


# --- body: what the reference server passes ------------------------------------------------------


def test_body_mode_passes_the_raw_body_byte_for_byte(body: httpx.Client, body_server: Server) -> None:
    raw = '{ "data" : [1,  2],\n "caf\\u00e9": "\u2603" }'
    assert received(body.post("/score", content=raw.encode())) == raw
    assert received(body.post("/score", content=b"plain text")) == "plain text"
    assert received(body.post("/score", content=b"")) == ""
    assert "run() receives the raw request body (set by run_input=body)" in body_server.log


def test_body_mode_form_bodies_arrive_empty_as_on_the_reference(body: httpx.Client) -> None:
    assert received(body.post("/score", content=b'{"data": [1]}', headers=FORM)) == ""


def test_body_mode_get_passes_the_query_as_json_text(body: httpx.Client) -> None:
    query = "echo=1&a=1&a=2&b=x&c=null&d=[1,2]"
    expected = '{"echo": 1, "a": [1, 2], "b": "x", "c": null, "d": [1, 2]}'
    assert received(body.get(f"/score?{query}")) == expected
    assert received(body.get("/score")) == "{}"


# --- auto: both kinds of script unchanged ---------------------------------------------------------


def test_auto_gives_the_data_value_of_a_data_only_body(auto: httpx.Client) -> None:
    assert received(auto.post("/score", json={"data": [1, 2]})) == "[1,2]"
    # `curl -d` labels JSON as a form; the documented shape still works.
    assert received(auto.post("/score", content=b'{"data": [1, 2]}', headers=FORM)) == "[1,2]"


@pytest.mark.parametrize(
    "raw",
    ['{"data": [1], "threshold": 0.5}', '{"a": [1, 2], "b": [3, 4]}', "[1, 2, 3]", "not json at all", "{broken", ""],
)
def test_auto_passes_any_other_body_raw(auto: httpx.Client, raw: str) -> None:
    assert received(auto.post("/score", content=raw.encode())) == raw


def test_auto_get_query(auto: httpx.Client) -> None:
    assert received(auto.get("/score?data=[1,2]")) == "[1,2]"
    assert received(auto.get("/score?a=1&a=2&b=x")) == '{"a": [1, 2], "b": "x"}'


def test_auto_on_a_script_that_indexes_data_itself() -> None:
    with served("reads_data_key.py") as server, server.client() as client:
        response = client.post("/score", json={"data": [[1, 2], [3, 4]]})
        assert response.json() == {"rows": 2, "total": 10}
        # The whole body reaches run(), other keys included.
        assert client.post("/score", content=b'{"data": [[5]], "extra": true}').json() == {"rows": 1, "total": 5}
    assert (
        'input: run() receives the raw request body (run_input=auto: reads_data_key.py line 11 reads a "data" key); '
        "override with --run-input data|body" in server.log
    )


def test_auto_on_a_script_whose_helper_module_indexes_data() -> None:
    # score.py calls helper.parse(raw), which does `json.loads(raw)["data"]`: auto follows the import.
    with served(SCRIPTS / "data_key_in_helper" / "score.py") as server, server.client() as client:
        response = client.post("/score", json={"data": [[1, 2], [3, 4]]})
        assert response.status_code == 200, response.text
        assert response.json() == {"rows": 2, "total": 10}
    assert (
        "input: run() receives the raw request body "
        '(run_input=auto: helper.py line 7 (imported by score.py) reads a "data" key)' in server.log
    )


def test_auto_on_the_documentation_sklearn_example() -> None:
    with served("sklearn_doc.py") as server, server.client() as client:
        assert client.post("/score", json={"data": [[3, 3], [-3, -3]]}).json() == [1, 0]
        assert client.post("/score", json=[[2, 2]]).json() == [1]  # a bare array body goes through as is
    assert 'run_input=auto: sklearn_doc.py never reads a "data" key itself' in server.log


def test_auto_on_a_script_that_parses_the_whole_body_as_a_dataframe() -> None:
    with served("whole_body_frame.py") as server, server.client() as client:
        records = client.post("/score", json=[{"a": 1, "b": 2}, {"a": 3, "b": 4}])
        assert records.json() == {"columns": ["a", "b"], "rows": 2, "sums": [4, 6]}
        columns = client.post("/score", json={"a": [1, 2], "b": [3, 4]})
        assert columns.json() == {"columns": ["a", "b"], "rows": 2, "sums": [3, 7]}


def test_auto_on_a_script_that_takes_a_bare_row() -> None:
    with served("bare_row.py") as server, server.client() as client:
        assert client.post("/score", json=[1, 2, 3]).json() == {"length": 3, "total": 6}


def test_script_reading_data_is_overridden_by_run_input_data() -> None:
    # The override the start-up log names: the script then gets the "data" value and fails on its own ["data"].
    with served("reads_data_key.py", "--run-input", "data") as server, server.client() as client:
        response = client.post("/score", json={"data": [[1]]}, headers={"x-request-id": "reads-data-1"})
        assert response.status_code == 500
        assert response.json() == {"message": RUN_FAILED_MESSAGE}  # what run() raised is in the log only
        server.wait_for_log(r"\[reads-data-1\] run\(\) raised TypeError")
