"""Body-size limits, awkward bodies and the per-request deadline, over real sockets."""

from __future__ import annotations

import http.client
import json
import urllib.parse
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from conftest import Server, served

from scorehost.http.pipeline import RUN_FAILED_MESSAGE

LIMIT = 100


@pytest.fixture(scope="module")
def limited() -> Iterator[Server]:
    with served("echo.py", "--max-body-size", str(LIMIT)) as server:
        yield server


def body_of(size: int) -> bytes:
    """A `{"data": "xxx"}` body of exactly `size` bytes."""
    body = b'{"data": "' + b"x" * (size - 12) + b'"}'
    assert len(body) == size
    return body


def chunks(body: bytes, size: int = 7) -> Iterator[bytes]:
    """The body as a chunked upload: no content-length, so the limit is checked while reading."""
    for start in range(0, len(body), size):
        yield body[start : start + size]


def test_body_exactly_at_the_limit_is_served(limited: Server) -> None:
    with limited.client() as client:
        response = client.post("/score", content=body_of(LIMIT))
    assert response.status_code == 200
    assert response.json() == {"received": '"' + "x" * (LIMIT - 12) + '"'}


def test_body_one_byte_over_the_limit_is_413(limited: Server) -> None:
    with limited.client() as client:
        response = client.post("/score", content=body_of(LIMIT + 1), headers={"x-request-id": "too-big"})
        assert response.status_code == 413
        assert response.json() == {
            "message": f"The body is larger than the {LIMIT}-byte limit; send less, or raise --max-body-size."
        }
        assert response.headers["connection"] == "close"
        assert response.headers["x-request-id"] == "too-big"
        assert response.headers["x-ms-run-function-failed"] == "False"
        # The server is fine afterwards.
        assert client.post("/score", json={"data": 1}).status_code == 200
    limited.wait_for_log(r"scorehost.access - \[too-big\] POST /score 413 ")


def test_chunked_body_is_limited_while_read(limited: Server) -> None:
    with limited.client() as client:
        assert client.post("/score", content=chunks(body_of(LIMIT))).status_code == 200
        assert client.post("/score", content=chunks(body_of(LIMIT + 1))).status_code == 413


def test_much_larger_body_is_refused_before_it_is_read(limited: Server) -> None:
    # 10 MB against a 100-byte limit: the client gets the 413, not a broken connection.
    with limited.client() as client:
        assert client.post("/score", content=b"x" * 10_000_000).status_code == 413
        assert client.post("/score", content=chunks(b"x" * 10_000_000, 65536)).status_code == 413


def test_large_body_within_the_default_limit() -> None:
    with served("echo.py") as server, server.client() as client:
        values = list(range(200_000))  # about 1.3 MB of JSON
        response = client.post("/score", json={"data": values})
    assert response.status_code == 200
    assert len(response.json()["received"]) > 1_000_000
    assert "bodies up to 104.9 MB" in server.log  # the default, 100MiB


def test_size_units() -> None:
    with served("echo.py", "--max-body-size", "1KiB") as server, server.client() as client:
        assert client.post("/score", content=body_of(1024)).status_code == 200
        assert client.post("/score", content=body_of(1025)).status_code == 413


# --- clients that send the whole body before they read ------------------------------------------------

MIB = 1024 * 1024


@pytest.fixture(scope="module")
def mib_limited() -> Iterator[Server]:
    with served("echo.py", "--max-body-size", "1MiB") as server:
        yield server


def http_client_post(server: Server, body: bytes | Iterator[bytes]) -> tuple[int, dict[str, str], bytes]:
    """POST /score as Python's http.client does (and requests): the whole body first, then the answer. Bytes
    go with a content-length, an iterator chunked."""
    parsed = urllib.parse.urlsplit(server.url)
    connection = http.client.HTTPConnection(parsed.hostname or "127.0.0.1", parsed.port, timeout=30)
    try:
        connection.request("POST", "/score", body=body, encode_chunked=not isinstance(body, bytes))
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


@pytest.mark.parametrize("size", [MIB + 1, 16 * MIB], ids=["limit+1", "16x"])
@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_a_client_that_sends_the_whole_body_first_reads_the_413(mib_limited: Server, size: int, chunked: bool) -> None:
    """Refused, the rest of the body is read and dropped before the answer: http.client gets to read the 413
    (answered unread, the client is still sending when the connection closes: a broken pipe or a reset)."""
    body = chunks(b"x" * size, 65536) if chunked else b"x" * size
    status, headers, answer = http_client_post(mib_limited, body)
    assert status == 413
    assert json.loads(answer) == {
        "message": f"The body is larger than the {MIB}-byte limit; send less, or raise --max-body-size."
    }
    assert headers["x-ms-request-id"]
    assert headers["x-request-id"]
    assert headers["x-ms-server-version"].startswith("scorehost/")
    assert headers["x-ms-run-function-failed"] == "False"
    status, _, answer = http_client_post(mib_limited, body_of(MIB))  # and the server is fine afterwards
    assert status == 200
    assert len(json.loads(answer)["received"]) == MIB - 10


def test_100_mib_and_one_byte_at_the_default_limit_reads_the_413() -> None:
    """The issue's case, at the default limit: Python's http.client sends 100 MiB + 1 byte, then reads a 413."""
    with served("echo.py") as server:
        body = b"x" * (100 * MIB + 1)
        status, headers, answer = http_client_post(server, body)
        del body
        assert status == 413
        assert json.loads(answer)["message"].startswith(f"The body is larger than the {100 * MIB}-byte limit")
        assert headers["x-ms-run-function-failed"] == "False"
        assert http_client_post(server, b'{"data": 1}')[0] == 200


# --- awkward bodies ------------------------------------------------------------------------------


@pytest.mark.parametrize("run_input", ["auto", "data", "body"])
def test_non_utf8_body_is_400_in_every_mode(run_input: str) -> None:
    with served("echo.py", "--run-input", run_input) as server, server.client() as client:
        response = client.post("/score", content=b"\xff\xfe{}", headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert response.json()["message"].startswith(
        "Input cannot be decoded as UTF-8: 'utf-8' codec can't decode byte 0xff in position 0: invalid start byte"
    )


def test_malformed_and_empty_bodies_reach_the_script_under_auto(limited: Server) -> None:
    # As on the reference: the server does not judge the JSON; the script's own parsing does.
    with limited.client() as client:
        assert client.post("/score", content=b'{"data": [1,').json() == {"received": '{"data": [1,'}
        assert client.post("/score", content=b"").json() == {"received": ""}


def test_malformed_body_fails_in_the_script_that_parses_it() -> None:
    with served("sklearn_doc.py") as server, server.client() as client:
        response = client.post("/score", content=b'{"data": [[1, 2]', headers={"x-request-id": "malformed-1"})
        assert response.status_code == 500
        assert response.json() == {"message": RUN_FAILED_MESSAGE}  # what run() raised is in the log only
        assert response.headers["x-ms-run-function-failed"] == "True"
        server.wait_for_log(r"\[malformed-1\] run\(\) raised JSONDecodeError")
        empty = client.post("/score", content=b"", headers={"x-request-id": "empty-1"})
        assert empty.status_code == 500
        assert empty.json() == {"message": RUN_FAILED_MESSAGE}
        server.wait_for_log(r"\[empty-1\] run\(\) raised JSONDecodeError")


# --- deadlines -----------------------------------------------------------------------------------


def test_deadline_covers_run_and_waiting() -> None:
    # One worker, one run thread and one spare thread, 2 s per request. A sleeps 3 s (in C, so it runs past
    # its deadline but returns within the stuck-worker grace period); B arrives while A runs, and waits on the
    # spare thread past its own deadline.
    args = ("--timeout", "2", "--spare-threads", "1")
    with served("slow.py", *args) as server, server.client() as client, ThreadPoolExecutor(2) as pool:
        first = pool.submit(client.post, "/score", json={"data": 3}, headers={"x-request-id": "first"})
        server.wait_for_log(r"\[first\] sleeping 3.0 s")
        second = pool.submit(client.post, "/score", json={"data": 0}, headers={"x-request-id": "second"})
        running, queued = first.result(), second.result()

        assert running.status_code == 504
        assert running.json() == {
            "message": "run() did not finish within the 2000 ms scoring timeout (--timeout / SCORING_TIMEOUT_MS)."
        }
        assert running.headers["x-ms-run-function-failed"] == "True"

        assert queued.status_code == 504
        assert queued.json() == {
            "message": "The request waited 2000 ms behind other requests and was not run "
            "(--timeout / SCORING_TIMEOUT_MS); retry later, or add workers."
        }
        assert queued.headers["x-request-id"] == "second"
        assert "[second] sleeping" not in server.log  # a request that timed out in the queue never runs

        # The same worker serves on once A's run() has returned.
        after = client.post("/score", json={"data": 0})
        assert after.status_code == 200
        assert after.json()["pid"] == client.post("/score", json={"data": 0}).json()["pid"]


def test_a_request_that_waits_past_max_queue_wait_is_a_429_and_never_runs() -> None:
    # Azure ML's request_settings.max_queue_wait_ms: B waits 300 ms behind A, then is sent away, unrun.
    args = ("--timeout", "10", "--spare-threads", "1", "--max-queue-wait", "0.3")
    with served("slow.py", *args) as server, server.client() as client, ThreadPoolExecutor(2) as pool:
        first = pool.submit(client.post, "/score", json={"data": 1.5}, headers={"x-request-id": "first"})
        server.wait_for_log(r"\[first\] sleeping 1.5 s")
        queued = client.post("/score", json={"data": 0}, headers={"x-request-id": "second"})
        assert queued.status_code == 429
        assert queued.json() == {
            "message": "The request waited 300 ms for its turn and was not run (--max-queue-wait): the deployment is "
            "busy; retry later, or add instances."
        }
        assert (queued.headers["retry-after"], queued.headers["x-ms-run-function-failed"]) == ("1", "False")
        assert queued.headers["x-request-id"] == "second"
        assert first.result().status_code == 200
        assert "[second] sleeping" not in server.log
        assert client.post("/score", json={"data": 0}).status_code == 200  # alone, it does not wait at all


def test_spare_thread_answers_probes_while_run_is_busy() -> None:
    with served("slow.py", "--spare-threads", "1") as server, server.client() as client, ThreadPoolExecutor(1) as pool:
        assert "run() threads per worker: 1, spare threads: 1" in server.log
        busy = pool.submit(client.post, "/score", json={"data": 3}, headers={"x-request-id": "busy"})
        server.wait_for_log(r"\[busy\] sleeping 3.0 s")
        with server.client() as probe:
            assert probe.get("/", timeout=1).text == "Healthy"
            assert probe.get("/ready", timeout=1).status_code == 200
        assert not busy.done()  # answered while run() was still sleeping
        assert busy.result().status_code == 200


@pytest.mark.parametrize("run_input", ["auto", "data"])
def test_json_nested_too_deeply_is_a_400_not_a_server_error(run_input: str) -> None:
    deep = "[" * 100_000 + "]" * 100_000
    with served("echo.py", "--run-input", run_input) as server, server.client() as client:
        posted = client.post("/score", content=f'{{"data": {deep}}}'.encode())
        assert client.post("/score", json={"data": [[1]]}).status_code == 200  # and the worker is fine
    # (A query string cannot nest that deep within the 4094-byte target: tests/host/test_inputs.py covers it.)
    assert posted.status_code == 400
    assert "nested too deeply" in posted.json()["message"]
    assert posted.headers["x-ms-run-function-failed"] == "False"


# --- limits on the request head --------------------------------------------------------------------------

EVERY_ANSWER = ("x-ms-request-id", "x-request-id", "x-ms-server-version", "x-ms-run-function-failed")


def raw_get(server: Server, target: str, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
    parsed = urllib.parse.urlsplit(server.url)
    connection = http.client.HTTPConnection(parsed.hostname or "127.0.0.1", parsed.port, timeout=30)
    try:
        connection.request("GET", target, headers=headers)
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


@pytest.mark.parametrize(
    ("target", "headers", "status", "message"),
    [
        ("/score?data=" + "1" * 5000, {}, 414, "The request's path and query are longer than 4094 bytes"),
        ("/", {"x-big": "b" * 9000}, 431, "The x-big header is longer than 8190 bytes."),
        ("/", {"x-request-id": "r" * 101}, 431, "x-request-id must not exceed 100 characters"),
    ],
    ids=["long-target", "long-header", "long-request-id"],
)
def test_a_head_past_the_limits_is_refused_with_the_headers_of_every_answer(
    limited: Server, target: str, headers: dict[str, str], status: int, message: str
) -> None:
    """gunicorn's limits (the reference's): answered by scorehost as JSON, with the headers every answer carries."""
    got, answer_headers, body = raw_get(limited, target, headers)
    assert got == status
    assert json.loads(body)["message"].startswith(message)
    for name in EVERY_ANSWER:
        assert answer_headers[name], name
    assert answer_headers["x-ms-run-function-failed"] == "False"
    assert "r" * 101 not in answer_headers.values()  # a refused id is not echoed
    assert raw_get(limited, "/", {"x-fine": "f" * 8000})[0] == 200  # under the limit
