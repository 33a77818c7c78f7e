"""The WSGI app of one worker, in process: routes, /score answers, limits, deadlines and headers.

Each test builds a ScoringApp around a real RunGate and a real entry script from tests/scripts, and
talks to it through httpx's WSGI transport (no sockets, no granian: the end-to-end tests are
test_server_*). A few tests call the app with a hand-made environ, to control how the body arrives.
"""

from __future__ import annotations

import io
import json
import logging
import re
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from wsgiref.validate import validator

import httpx
import pytest

from scorehost import __version__
from scorehost.host import RunInput, load_entry_script
from scorehost.http import ScoringApp
from scorehost.http.gate import RunGate
from scorehost.telemetry.logs import AccessLog

pytestmark = pytest.mark.usefixtures("script_sandbox")

MakeApp = Callable[..., ScoringApp]
EXEC_MS = re.compile(r"^\d+\.\d{3}$")


@pytest.fixture
def make_app(scripts: Path) -> Iterator[MakeApp]:
    """`make_app("echo.py", timeout=..., max_body_size=..., run_input=...)`: a ready app; None: no script yet."""
    gates: list[RunGate] = []

    def _make(
        script: str | None = "echo.py",
        *,
        timeout: float = 10.0,
        max_body_size: int = 1024,
        run_input: RunInput = RunInput.AUTO,
        threads: int = 1,
        access_log: AccessLog | None = None,
    ) -> ScoringApp:
        gate = RunGate(threads, stuck_grace=30.0, on_stuck=lambda reason: None)
        gates.append(gate)
        app = ScoringApp(gate, timeout=timeout, max_body_size=max_body_size, access_log=access_log)
        if script is not None:
            entry = load_entry_script(scripts / script, run_input)
            entry.init()
            app.script = entry
        return app

    yield _make
    for gate in gates:
        gate.close("the test is over")


def client(app: Callable[..., Iterable[bytes]]) -> httpx.Client:
    return httpx.Client(transport=httpx.WSGITransport(app=app), base_url="http://scorehost.test")


def score(app: ScoringApp, body: object = None, **kwargs: Any) -> httpx.Response:
    """POST /score with `body` as JSON (or `content=`/`headers=` as given)."""
    with client(app) as http:
        if body is not None:
            kwargs["json"] = body
        return http.post("/score", **kwargs)


def call(app: ScoringApp, **environ: Any) -> tuple[str, dict[str, str], bytes]:
    """Call the app with a minimal environ (POST /score unless given); return status line, headers, body."""
    full: dict[str, Any] = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": "/score",
        "QUERY_STRING": "",
        "SERVER_NAME": "scorehost.test",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(b""),
        **environ,
    }
    started: list[tuple[str, list[tuple[str, str]]]] = []
    body = b"".join(app(full, lambda status, headers, exc_info=None: started.append((status, headers))))
    ((status, headers),) = started
    return status, dict(headers), body


def wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.005)


# --- liveness, readiness and routing --------------------------------------------------------------------


def test_root_answers_healthy_once_init_has_finished(make_app: MakeApp, scripts: Path) -> None:
    app = make_app(None)
    with client(app) as http:
        before = http.get("/")
        head_before = http.head("/")
        entry = load_entry_script(scripts / "echo.py")
        app.script = entry
        loaded_not_initialised = http.get("/")
        entry.init()
        response = http.get("/")
        head = http.head("/")
    for early in (before, loaded_not_initialised):
        assert early.status_code == 503
        assert early.json() == {"message": "init() has not finished yet; GET /live answers while it runs."}
    assert head_before.status_code == 503
    assert head_before.content == b""
    assert response.status_code == 200
    assert response.text == "Healthy"
    assert response.headers["content-type"].startswith("text/plain")
    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["content-length"] == str(len(b"Healthy"))  # as GET would send


def test_live_answers_while_init_runs(make_app: MakeApp) -> None:
    with client(make_app(None)) as http:
        response = http.get("/live")
        head = http.head("/live")
    assert response.status_code == 200
    assert response.json() == {"status": "alive"}
    assert head.status_code == 200
    assert head.content == b""


def test_ready_is_503_until_the_script_is_set(make_app: MakeApp, scripts: Path) -> None:
    app = make_app(None)
    with client(app) as http:
        before = http.get("/ready")
        entry = load_entry_script(scripts / "echo.py")
        app.script = entry
        loaded_not_initialised = http.get("/ready")
        entry.init()
        after = http.get("/ready")
        head = http.head("/ready")
    assert before.status_code == 503
    assert before.json() == {"status": "loading", "message": "init() has not finished yet."}
    assert loaded_not_initialised.status_code == 503
    assert after.status_code == 200
    assert after.json() == {"status": "ready"}
    assert head.status_code == 200
    assert head.content == b""


def test_score_before_the_script_is_loaded_is_a_503(make_app: MakeApp) -> None:
    response = score(make_app(None), {"data": [1]})
    assert response.status_code == 503
    assert "init()" in response.json()["message"]
    assert response.headers["retry-after"] == "1"


@pytest.mark.parametrize(
    ("path", "allow"),
    [("/score", "GET, POST, OPTIONS"), ("/", "GET, HEAD, OPTIONS"), ("/ready", "GET, HEAD, OPTIONS")],
)
def test_options_lists_the_methods(make_app: MakeApp, path: str, allow: str) -> None:
    with client(make_app()) as http:
        response = http.options(path)
    assert response.status_code == 200
    assert response.headers["allow"] == allow
    assert response.content == b""


@pytest.mark.parametrize("path", ["/nope", "/score/", "/v1/models/x:predict", "/swagger.jsonx"])
def test_unknown_path_is_a_json_404(make_app: MakeApp, path: str) -> None:
    with client(make_app()) as http:
        response = http.get(path)
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/json"
    assert response.json()["message"].startswith(f"No route {path}. Routes: GET / (ready), GET /live")


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("PUT", "/score", "GET, POST, OPTIONS"),
        ("DELETE", "/score", "GET, POST, OPTIONS"),
        ("PATCH", "/score", "GET, POST, OPTIONS"),
        ("HEAD", "/score", "GET, POST, OPTIONS"),
        ("POST", "/", "GET, HEAD, OPTIONS"),
        ("POST", "/ready", "GET, HEAD, OPTIONS"),
    ],
)
def test_wrong_method_is_a_json_405_with_allow(make_app: MakeApp, method: str, path: str, allow: str) -> None:
    with client(make_app()) as http:
        response = http.request(method, path)
    assert response.status_code == 405
    assert response.headers["allow"] == allow
    assert response.headers["content-type"] == "application/json"
    if method == "HEAD":
        assert response.content == b""
    else:
        assert response.json() == {"message": f"{method} is not allowed on {path}; use {allow}."}


# --- WSGI conformance -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/", 200),
        ("HEAD", "/", 200),
        ("GET", "/ready", 200),
        ("OPTIONS", "/score", 200),
        ("GET", "/nope", 404),
        ("PUT", "/score", 405),
        ("POST", "/score", 200),
        ("GET", "/score", 200),
    ],
)
def test_the_app_passes_the_wsgi_validator(make_app: MakeApp, method: str, path: str, status: int) -> None:
    """wsgiref's validator checks the environ use, start_response call, header types and body iterable."""
    with client(validator(make_app())) as http:
        response = http.request(method, path, json={"data": 1} if method == "POST" else None)
    assert response.status_code == status


@pytest.mark.parametrize(
    ("environ", "status_line"),
    [
        ({"REQUEST_METHOD": "GET", "PATH_INFO": "/"}, "200 OK"),
        ({"REQUEST_METHOD": "GET", "PATH_INFO": "/nope"}, "404 Not Found"),
        ({"REQUEST_METHOD": "PUT", "PATH_INFO": "/score"}, "405 Method Not Allowed"),
        ({"HTTP_X_REQUEST_ID": "x" * 101}, "431 Request Header Fields Too Large"),
        ({"CONTENT_LENGTH": "2000"}, "413 Request Entity Too Large"),
    ],
)
def test_status_lines_carry_the_reason_phrase(make_app: MakeApp, environ: dict[str, str], status_line: str) -> None:
    status, headers, body = call(make_app(), **environ)
    assert status == status_line
    assert headers["content-length"] == str(len(body))


def test_the_body_is_one_bytes_chunk(make_app: MakeApp) -> None:
    app = make_app()
    environ = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": "/score",
        "CONTENT_LENGTH": "11",
        "wsgi.input": io.BytesIO(b'{"data": 1}'),
    }
    result = app(environ, lambda status, headers, exc_info=None: None)
    assert isinstance(result, list)
    assert len(result) == 1
    assert type(result[0]) is bytes
    assert json.loads(result[0]) == {"received": "1"}


# --- /score -------------------------------------------------------------------------------------------


def test_post_score_calls_run(make_app: MakeApp) -> None:
    response = score(make_app(), {"data": [[1, 2], [3, 4]]})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert json.loads(response.json()["received"]) == [[1, 2], [3, 4]]
    assert response.headers["x-ms-run-function-failed"] == "False"
    assert EXEC_MS.match(response.headers["x-ms-run-fn-exec-ms"])
    assert response.headers["x-ms-server-version"] == f"scorehost/{__version__}"


def test_get_score_gives_run_the_query(make_app: MakeApp) -> None:
    with client(make_app(run_input=RunInput.BODY)) as http:
        response = http.get("/score", params=[("echo", "1"), ("a", "1"), ("a", "2"), ("d", "[1,2]")])
        empty = http.get("/score")
    assert response.status_code == 200
    assert response.json() == {"received": '{"echo": 1, "a": [1, 2], "d": [1, 2]}'}
    assert empty.json() == {"received": "{}"}


def test_get_score_with_data_under_auto(make_app: MakeApp) -> None:
    with client(make_app()) as http:
        response = http.get("/score", params={"data": "[[1, 2]]"})
    assert json.loads(response.json()["received"]) == [[1, 2]]


@pytest.mark.parametrize(
    ("script", "body", "expected"),
    [
        # auto serves each kind of script unchanged
        ("reads_data_key.py", {"data": [[1, 2], [3, 4]]}, {"rows": 2, "total": 10}),
        ("sklearn_doc.py", {"data": [[3.0, 2.0], [-3.0, -2.0]]}, [1, 0]),
        ("bare_row.py", [1, 2, 3.5], {"length": 3, "total": 6.5}),
        ("whole_body_frame.py", {"a": [1, 2], "b": [3, 4]}, {"columns": ["a", "b"], "rows": 2, "sums": [3, 7]}),
    ],
)
def test_auto_runs_every_kind_of_script(make_app: MakeApp, script: str, body: object, expected: object) -> None:
    response = score(make_app(script), body)
    assert response.status_code == 200, response.text
    assert response.json() == expected


def test_auto_with_curl_style_form_content_type(make_app: MakeApp) -> None:
    """`curl -d '{"data": ...}'` sends application/x-www-form-urlencoded."""
    response = score(
        make_app("sklearn_doc.py"),
        content=b'{"data": [[3.0, 2.0]]}',
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 200
    assert response.json() == [1]


def test_run_input_body_passes_the_raw_body(make_app: MakeApp) -> None:
    raw = b'{ "data" : [1,  2] }\n'
    response = score(make_app(run_input=RunInput.BODY), content=raw)
    assert response.json() == {"received": raw.decode()}


def test_run_input_data_passes_the_data_value(make_app: MakeApp) -> None:
    response = score(make_app(run_input=RunInput.DATA), content=b'{"data": [1,  2], "other": 3}')
    assert response.status_code == 200
    assert json.loads(response.json()["received"]) == [1, 2]


def test_run_input_data_without_a_data_key_is_a_400(make_app: MakeApp) -> None:
    response = score(make_app(run_input=RunInput.DATA), {"input": [1]})
    assert response.status_code == 400
    assert response.json()["message"].startswith("The body has no \"data\" key (keys: 'input')")
    assert response.headers["x-ms-run-function-failed"] == "False"
    assert "x-ms-run-fn-exec-ms" not in response.headers


def test_non_utf8_body_is_a_400(make_app: MakeApp) -> None:
    response = score(make_app(), content=b"\xff\xfe{}", headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert response.json()["message"].startswith(
        "Input cannot be decoded as UTF-8: 'utf-8' codec can't decode byte 0xff in position 0"
    )
    assert response.headers["x-ms-run-function-failed"] == "False"


def test_empty_body_reaches_run_as_empty_text(make_app: MakeApp) -> None:
    response = score(make_app(), content=b"")
    assert response.status_code == 200
    assert response.json() == {"received": ""}


# --- what run() returns ----------------------------------------------------------------------------------


def test_numpy_and_pandas_results(make_app: MakeApp) -> None:
    response = score(make_app("returns_numpy.py"), {"data": 1})
    assert response.status_code == 200
    assert response.json() == {
        "array": [[0.0, 0.5, 1.0], [1.5, 2.0, 2.5]],
        "ints": [1, 2, 3],
        "scalar": 1.5,
        "count": 7,
        "flag": True,
        "series": [1, 2],
        "frame": [{"a": 1, "b": "x"}, {"a": 2, "b": "y"}],
    }


@pytest.mark.parametrize(
    ("name", "content", "content_type"),
    [
        ("none", b"{}", "application/json"),
        ("string", b'"hello"', "application/json"),
        ("json-string", b'"{\\"already\\": \\"json\\"}"', "application/json"),
        ("bytes", b"\x00\x01binary", "application/octet-stream"),
        ("tuple", b'[1,"two"]', "application/json"),
    ],
)
def test_plain_results(make_app: MakeApp, name: str, content: bytes, content_type: str) -> None:
    response = score(make_app("returns_plain.py"), {"data": name})
    assert response.status_code == 200
    assert response.content == content
    assert response.headers["content-type"] == content_type


def test_run_raising_is_a_500_with_the_reference_message(make_app: MakeApp, caplog: pytest.LogCaptureFixture) -> None:
    response = score(make_app("run_raises.py"), {"data": [1]}, headers={"x-request-id": "req-raises"})
    assert response.status_code == 500
    assert response.json() == {
        "message": "An unexpected error occurred in scoring script. Check the logs for more info."
    }
    assert "cannot score" not in response.text
    assert response.headers["x-ms-run-function-failed"] == "True"
    assert "x-ms-run-fn-exec-ms" not in response.headers
    assert response.headers["x-request-id"] == "req-raises"
    # The log has the user's traceback, tagged with the request id.
    (record,) = [r for r in caplog.records if r.name == "scorehost.worker"]
    assert record.levelno == logging.ERROR
    assert record.request_id == "req-raises"  # type: ignore[attr-defined]
    assert 'raise ValueError(f"cannot score {value}")' in record.getMessage()
    assert "run() raised ValueError: cannot score [1]" in record.getMessage()


def test_debug_errors_sends_what_run_raised(scripts: Path) -> None:
    gate = RunGate(1, stuck_grace=30.0, on_stuck=lambda reason: None)
    app = ScoringApp(gate, timeout=10.0, max_body_size=1024, debug_errors=True)
    entry = load_entry_script(scripts / "run_raises.py")
    entry.init()
    app.attach(entry)
    response = score(app, {"data": [1]})
    assert response.status_code == 500
    assert response.json() == {"message": "run() raised ValueError: cannot score [1]"}
    assert response.headers["x-ms-run-function-failed"] == "True"


def test_unserializable_result_is_a_distinct_500(make_app: MakeApp) -> None:
    response = score(make_app("unserializable.py"), {"data": 1})
    assert response.status_code == 500
    message = response.json()["message"]
    assert "type entry_module.Opaque is not JSON serializable" in message
    assert response.headers["x-ms-run-function-failed"] == "False"
    assert "x-ms-run-fn-exec-ms" not in response.headers


def test_request_headers_script_gets_title_case_headers(make_app: MakeApp) -> None:
    response = score(
        make_app("request_headers.py"), {"data": 1}, headers={"X-Custom": "custom-value", "x-request-id": "rid-7"}
    )
    assert response.status_code == 200
    result = response.json()
    headers = result["headers"]
    assert headers["X-Custom"] == "custom-value"
    assert headers["X-Request-Id"] == "rid-7"
    assert headers["Content-Type"] == "application/json"
    assert headers["Content-Length"] == str(len(b'{"data":1}'))
    assert headers["Host"] == "scorehost.test"
    assert all(name == name.title() for name in headers)
    assert result["lower_case_lookup"] is None  # lookups are case-sensitive, as on the reference
    assert result["data"] == "1"


def test_request_headers_leave_out_the_rest_of_the_environ(make_app: MakeApp) -> None:
    status, _, body = call(
        make_app("request_headers.py"),
        CONTENT_TYPE="application/json",
        CONTENT_LENGTH="11",
        HTTP_ACCEPT="*/*",
        REMOTE_ADDR="10.0.0.1",
        **{"wsgi.input": io.BytesIO(b'{"data": 2}')},
    )
    assert status == "200 OK"
    assert json.loads(body)["headers"] == {"Accept": "*/*", "Content-Type": "application/json", "Content-Length": "11"}


# --- request ids ---------------------------------------------------------------------------------------


def test_new_request_id_when_none_is_sent(make_app: MakeApp) -> None:
    response = score(make_app(), {"data": 1})
    request_id = response.headers["x-request-id"]
    assert uuid.UUID(request_id).version == 4
    assert response.headers["x-ms-request-id"] == request_id
    assert "x-ms-client-request-id" not in response.headers


def test_client_request_id_and_trace_id_are_echoed(make_app: MakeApp) -> None:
    response = score(make_app(), {"data": 1}, headers={"x-ms-client-request-id": "C-1", "TraceId": "T-9"})
    assert response.headers["x-ms-request-id"] == "C-1"
    assert response.headers["x-ms-client-request-id"] == "C-1"
    assert response.headers["traceid"] == "T-9"
    assert response.headers["x-request-id"] != "C-1"


def test_error_replies_carry_the_request_ids(make_app: MakeApp) -> None:
    response = score(make_app("run_raises.py"), {"data": 1}, headers={"x-request-id": "R-2"})
    assert response.headers["x-request-id"] == "R-2"
    assert response.headers["x-ms-request-id"] == "R-2"


@pytest.mark.parametrize("name", ["x-request-id", "x-ms-request-id", "x-ms-client-request-id"])
def test_request_id_over_100_characters_is_a_431(make_app: MakeApp, name: str) -> None:
    response = score(make_app(), {"data": 1}, headers={name: "x" * 101})
    assert response.status_code == 431
    assert response.json()["message"].endswith("must not exceed 100 characters")
    # The refused id is not echoed; the answer still carries ids (new ones), as every answer does.
    assert response.headers["x-request-id"] != "x" * 101
    assert response.headers["x-ms-request-id"] != "x" * 101
    assert len(response.headers["x-request-id"]) == 36
    assert response.headers["x-ms-server-version"].startswith("scorehost/")
    assert response.headers["x-ms-run-function-failed"] == "False"


# --- body size limit -------------------------------------------------------------------------------------


class UnreadableInput:
    """A wsgi.input that fails the test if the app reads it."""

    def read(self, size: int = -1) -> bytes:
        raise AssertionError("the body was read")


class ChunkedInput:
    """A wsgi.input that hands out a chunked body one chunk per read(), as a server does as bytes arrive."""

    def __init__(self, *chunks: bytes) -> None:
        self.chunks = list(chunks)
        self.reads = 0

    def read(self, size: int = -1) -> bytes:
        self.reads += 1
        return self.chunks.pop(0) if self.chunks else b""


def test_body_at_the_limit_is_accepted(make_app: MakeApp) -> None:
    body = b'"' + b"a" * 98 + b'"'
    assert len(body) == 100
    response = score(make_app(run_input=RunInput.BODY, max_body_size=100), content=body)
    assert response.status_code == 200
    assert response.json() == {"received": body.decode()}


def test_content_length_one_byte_over_the_limit_is_a_413(make_app: MakeApp) -> None:
    response = score(make_app(max_body_size=100), content=b"x" * 101)
    assert response.status_code == 413
    assert response.json() == {
        "message": "The body is larger than the 100-byte limit; send less, or raise --max-body-size."
    }
    assert response.headers["connection"] == "close"
    assert response.headers["x-ms-run-function-failed"] == "False"


def test_content_length_is_checked_before_the_body_is_read(make_app: MakeApp) -> None:
    """A huge Content-Length is refused at once, without reading a byte of the body."""
    status, headers, body = call(
        make_app(max_body_size=100),
        CONTENT_LENGTH=str(10**12),
        CONTENT_TYPE="application/json",
        **{"wsgi.input": UnreadableInput()},
    )
    assert status.startswith("413 ")
    assert headers["connection"] == "close"
    assert json.loads(body)["message"].startswith("The body is larger than the 100-byte limit")


def test_chunked_body_over_the_limit_is_a_413(make_app: MakeApp) -> None:
    """Without Content-Length the body is counted as it arrives; past the limit the rest is read and dropped, so a
    client that sends it all before reading gets the 413."""
    body = ChunkedInput(b"x" * 60, b"y" * 41, b"z" * 1000)
    status, headers, _ = call(make_app(max_body_size=100), HTTP_TRANSFER_ENCODING="chunked", **{"wsgi.input": body})
    assert status.startswith("413 ")
    assert headers["connection"] == "close"
    assert headers["x-ms-run-function-failed"] == "False"
    assert body.chunks == []  # drained


def test_chunked_body_under_the_limit_is_joined(make_app: MakeApp) -> None:
    body = ChunkedInput(b'{"da', b'ta": [1, ', b"2, 3]}")
    status, _, reply = call(make_app(max_body_size=100), HTTP_TRANSFER_ENCODING="chunked", **{"wsgi.input": body})
    assert status == "200 OK"
    assert json.loads(json.loads(reply)["received"]) == [1, 2, 3]


def chunks(*parts: bytes) -> Iterator[bytes]:
    yield from parts


def test_streamed_body_over_the_limit_is_a_413(make_app: MakeApp) -> None:
    """httpx streams a generator without Content-Length (Transfer-Encoding: chunked)."""
    with client(make_app(max_body_size=100)) as http:
        response = http.post("/score", content=chunks(b"x" * 60, b"y" * 41))
    assert response.status_code == 413
    assert response.headers["connection"] == "close"


def test_streamed_body_under_the_limit_is_accepted(make_app: MakeApp) -> None:
    with client(make_app(max_body_size=100)) as http:
        response = http.post("/score", content=chunks(b'{"da', b'ta": [1, ', b"2, 3]}"))
    assert response.status_code == 200
    assert json.loads(response.json()["received"]) == [1, 2, 3]


# --- deadlines -------------------------------------------------------------------------------------------


def test_run_past_the_deadline_is_a_504(make_app: MakeApp) -> None:
    """run() busy in Python is interrupted at the deadline, and the request answered at once."""
    app = make_app("busy_loop.py", timeout=0.2)
    started = time.monotonic()
    response = score(app, {"data": 5})
    elapsed = time.monotonic() - started
    assert response.status_code == 504
    message = response.json()["message"]
    assert message.startswith("run() did not finish within the 200 ms scoring timeout")
    assert "--timeout / SCORING_TIMEOUT_MS" in message
    assert response.headers["x-ms-run-function-failed"] == "True"
    assert "x-ms-run-fn-exec-ms" not in response.headers
    assert elapsed < 0.7  # answered at the deadline, not when run() would have returned (5 s)
    assert app.script is not None
    assert (app.script.module.started, app.script.module.finished) == (1, 0)

    # The worker keeps serving, and the next run() is not hit by a leftover timeout.
    response = score(app, {"data": 0.1})
    assert response.status_code == 200
    assert response.json() == {"looped": 0.1}
    assert (app.script.module.started, app.script.module.finished) == (2, 1)


def test_run_blocked_in_c_is_answered_when_it_returns(make_app: MakeApp) -> None:
    """A sleep in C cannot be cut short: the 504 comes when run() gives control back."""
    app = make_app("slow.py", timeout=0.1)
    response = score(app, {"data": 0.3})
    assert response.status_code == 504
    assert response.json()["message"].startswith("run() did not finish within the 100 ms scoring timeout")
    assert score(app, {"data": 0}).status_code == 200


def test_request_queued_past_its_deadline_is_a_504_and_never_runs(
    make_app: MakeApp, capsys: pytest.CaptureFixture[str]
) -> None:
    app = make_app("slow.py", timeout=0.3)  # one slot
    assert app.script is not None
    module = app.script.module
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(score, app, {"data": 0.6})  # sleeps in C, holding the slot past the deadline
        wait_until(lambda: module.running == 1)
        second = pool.submit(score, app, {"data": 0.01})
        second_response, first_response = second.result(timeout=5), first.result(timeout=5)
    assert first_response.status_code == 504
    assert first_response.json()["message"].startswith("run() did not finish")
    assert second_response.status_code == 504
    assert second_response.json()["message"].startswith(
        "The request waited 300 ms behind other requests and was not run"
    )
    assert second_response.headers["x-ms-run-function-failed"] == "False"  # it never ran: not a failed run
    # The slot is free again; the expired request left the queue unrun.
    third = score(app, {"data": 0})
    assert third.status_code == 200
    printed = capsys.readouterr().out
    assert "sleeping 0.6 s" in printed
    assert "sleeping 0.0 s" in printed
    assert "sleeping 0.01 s" not in printed


def test_liveness_answers_while_run_is_busy(make_app: MakeApp) -> None:
    """Only /score goes through the gate: / and /ready answer while the one slot is taken."""
    app = make_app("slow.py", timeout=5)
    assert app.script is not None
    module = app.script.module
    with ThreadPoolExecutor(1) as pool:
        busy = pool.submit(score, app, {"data": 0.3})
        wait_until(lambda: module.running == 1)
        with client(app) as http:
            assert http.get("/").status_code == 200
            assert http.get("/ready").status_code == 200
        assert module.running == 1
        assert busy.result(timeout=5).status_code == 200


def test_closed_gate_is_a_503(make_app: MakeApp) -> None:
    app = make_app()
    app.gate.close("The worker is being replaced; retry.")
    response = score(app, {"data": 1})
    assert response.status_code == 503
    assert response.json() == {"message": "The worker is being replaced; retry."}
    assert response.headers["retry-after"] == "1"
    assert response.headers["x-ms-run-function-failed"] == "False"


def test_requests_wait_while_the_script_loads(make_app: MakeApp, scripts: Path) -> None:
    """The worker takes every slot while it loads: a request that comes meanwhile waits, then runs."""
    app = make_app(None)
    app.gate.acquire_all()
    with ThreadPoolExecutor(1) as pool:
        waiting = pool.submit(score, app, {"data": 1})
        with pytest.raises(TimeoutError):
            waiting.result(timeout=0.1)  # still waiting
        entry = load_entry_script(scripts / "echo.py")
        entry.init()
        app.script = entry
        app.gate.release_all()
        response = waiting.result(timeout=5)
    assert response.status_code == 200
    assert json.loads(response.json()["received"]) == 1


# --- access log ------------------------------------------------------------------------------------------


def test_one_access_line_per_request(
    make_app: MakeApp, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.INFO, logger="scorehost.access")
    app = make_app(access_log=AccessLog("text"))
    response = score(app, {"data": 1}, headers={"x-request-id": "log-1"})
    with client(app) as http:
        http.get("/nope")
        head = http.head("/")
    app.access_log.flush()  # lines are written in batches (every 50 ms) or by flush()
    lines = [line for line in capfd.readouterr().err.splitlines() if "scorehost.access" in line]
    assert len(lines) == 3
    assert re.search(rf"\[log-1\] POST /score 200 \d+\.\d{{3}}ms {len(response.content)}B$", lines[0])
    assert re.search(r" GET /nope 404 \d+\.\d{3}ms \d+B$", lines[1])
    assert head.content == b""
    assert re.search(r" HEAD / 200 \d+\.\d{3}ms 0B$", lines[2])  # the bytes sent: none for HEAD


def test_access_lines_are_written_without_an_explicit_flush(
    make_app: MakeApp, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.INFO, logger="scorehost.access")
    app = make_app(access_log=AccessLog("text"))
    score(app, {"data": 1}, headers={"x-request-id": "batched"})
    seen = ""
    deadline = time.monotonic() + 5
    while "[batched] POST /score 200" not in seen and time.monotonic() < deadline:
        time.sleep(0.02)
        seen += capfd.readouterr().err
    assert "[batched] POST /score 200" in seen


def test_no_access_line_when_disabled(make_app: MakeApp, capfd: pytest.CaptureFixture[str]) -> None:
    score(make_app(), {"data": 1})
    assert "scorehost.access" not in capfd.readouterr().err
