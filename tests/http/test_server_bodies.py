"""Bodies that are not whole (cut short, badly chunked) and bodies nested too deep, over real sockets: such a
request never reaches run(), and is answered 400 with the connection closed."""

from __future__ import annotations

import json
import socket
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import Server, served

HEAD = b"POST /score HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"


@pytest.fixture(scope="module")
def calls_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("calls")


@pytest.fixture(scope="module")
def recorder(calls_dir: Path) -> Iterator[Server]:
    with served("records_calls.py", "--run-input", "body", env={"CALLS_DIR": str(calls_dir)}) as server:
        yield server


def exchange(server: Server, request: bytes, *, shut: bool) -> bytes:
    """Send `request` on a fresh connection (then shut the sending side, as a client that stops does) and read
    until the server closes the connection."""
    parsed = urllib.parse.urlsplit(server.url)
    with socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or 80), timeout=20) as sock:
        sock.sendall(request)
        if shut:
            sock.shutdown(socket.SHUT_WR)
        answer = b""
        while chunk := sock.recv(65536):  # ends when the server closes: a timeout here fails the test
            answer += chunk
    return answer


def status_and_message(answer: bytes) -> tuple[int, dict[str, str], str]:
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {name.lower(): value for name, value in (line.split(": ", 1) for line in lines[1:])}
    return int(lines[0].split()[1]), headers, json.loads(body)["message"]


@pytest.mark.parametrize(
    ("request_bytes", "shut", "message"),
    [
        (HEAD + b'Content-Length: 40\r\n\r\n{"data": [1, 2', True, "The body ended after 14 of the 40 bytes"),
        (HEAD + b'Transfer-Encoding: chunked\r\n\r\n5\r\n{"dat\r\n', True, "The chunked body ended before its last"),
        (
            HEAD + b'Transfer-Encoding: chunked\r\n\r\n5\r\n{"dat\r\nzz\r\na": 1}\r\n0\r\n\r\n',
            False,
            "has a malformed chunk",
        ),
        (HEAD + b'Transfer-Encoding: chunked\r\n\r\n5\r\n{"dat\r\n5\r\na": 1}\r\n', True, "The chunked body ended"),
    ],
    ids=["content-length-cut-short", "chunked-without-last-chunk", "bad-chunk-size", "chunked-cut-between-chunks"],
)
def test_a_body_that_is_not_whole_never_reaches_run(
    recorder: Server, calls_dir: Path, request_bytes: bytes, shut: bool, message: str
) -> None:
    before = set(calls_dir.iterdir())
    status, headers, text = status_and_message(exchange(recorder, request_bytes, shut=shut))
    assert status == 400
    assert message in text
    assert headers["connection"] == "close"
    assert headers["x-ms-run-function-failed"] == "False"
    assert headers["x-ms-request-id"]
    assert set(calls_dir.iterdir()) == before  # run() was never called
    with recorder.client() as client:  # and whole bodies are scored as before
        assert client.post("/score", content=b'{"data": [1]}').json() == {"received": 13}
        assert client.post("/score", content=iter([b'{"data"', b": [1]}"])).json() == {"received": 13}


def test_a_whole_body_on_a_closing_connection_is_scored(recorder: Server, calls_dir: Path) -> None:
    """A whole body is scored, and the connection closed after its answer, as the client asked.

    Not with the client's sending side shut: granian (hyper, without half-close support) may then drop the answer
    (docs/serving.md lists it)."""
    answer = exchange(recorder, HEAD + b'Connection: close\r\nContent-Length: 13\r\n\r\n{"data": [1]}', shut=False)
    assert answer.startswith(b"HTTP/1.1 200 ")
    assert answer.endswith(b'{"received":13}')


# --- JSON nested deeper than Python reads, in every input mode ----------------------------------------------

DEEP = "[" * 100_000 + "]" * 100_000


def test_a_script_that_parses_a_deep_body_itself_gets_the_client_a_400() -> None:
    """Under --run-input body run() parses the body; its RecursionError on a body nested that deep is the client's
    bad input (400 naming the nesting), not a failed run (500)."""
    with served("parses_body.py", "--run-input", "body") as server, server.client() as client:
        deep = client.post("/score", content=f'{{"data": {DEEP}}}'.encode())
        assert client.post("/score", json={"data": [[1], [2]]}).json() == {"rows": 2}  # the worker is fine
    assert deep.status_code == 400
    assert deep.json()["message"].startswith("The body is JSON nested more than 500 levels deep")
    assert deep.headers["x-ms-run-function-failed"] == "False"


@pytest.mark.parametrize("run_input", ["auto", "data", "body"])
def test_a_deep_query_is_a_400_in_every_input_mode(run_input: str) -> None:
    """As deep as the 4094-byte target allows (2,000 levels), sent as is: past what Python's parser reads."""
    deep = "[" * 2000 + "]" * 2000
    with served("echo.py", "--run-input", run_input) as server:
        answer = exchange(
            server, f"GET /score?data={deep} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n".encode(), shut=False
        )
    status, _, message = status_and_message(answer)
    assert status == 400
    assert "nested too deeply" in message


def test_a_deep_body_for_a_typed_script_is_a_400() -> None:
    with served("typed_echo.py") as server, server.client() as client:
        for depth in (900, 100_000):  # within what orjson reads but not the decorators; past both
            answer = client.post(
                "/score",
                content=f'{{"data": {"[" * depth}{"]" * depth}}}'.encode(),
                headers={"content-type": "application/json"},
            )
            assert answer.status_code == 400, (depth, answer.text)
            assert answer.headers["x-ms-run-function-failed"] == "False"
