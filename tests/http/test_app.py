"""The ASGI app of one worker, in process: routes, /score answers, limits, deadlines and headers.

Each test builds a ScoringApp around a real RunExecutor and a real entry script from tests/scripts,
and talks to it through httpx's ASGI transport (no sockets; the end-to-end tests are test_server_*).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import httpx
import pytest

from scorehost import __version__
from scorehost.host import RunInput, load_entry_script
from scorehost.http import ScoringApp
from scorehost.http.runner import RunExecutor
from scorehost.logs import AccessLog

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("script_sandbox")]

MakeApp = Callable[..., ScoringApp]
EXEC_MS = re.compile(r"^\d+\.\d{3}$")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def make_app(scripts: Path) -> Iterator[MakeApp]:
    """`make_app("echo.py", timeout=..., max_body_size=..., run_input=...)`: a ready app; None: no script yet."""
    executors: list[RunExecutor] = []

    def _make(
        script: str | None = "echo.py",
        *,
        timeout: float = 10.0,
        max_body_size: int = 1024,
        run_input: RunInput = RunInput.AUTO,
        threads: int = 1,
        access_log: AccessLog | None = None,
    ) -> ScoringApp:
        executor = RunExecutor(threads, stuck_grace=30.0, on_stuck=lambda reason: None)
        executors.append(executor)
        app = ScoringApp(executor, timeout=timeout, max_body_size=max_body_size, access_log=access_log)
        if script is not None:
            entry = load_entry_script(scripts / script, run_input)
            entry.init()
            app.script = entry
        return app

    yield _make
    for executor in executors:
        executor.stop()


def client(app: ScoringApp) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://scorehost.test")


async def score(app: ScoringApp, body: object = None, **kwargs: object) -> httpx.Response:
    """POST /score with `body` as JSON (or `content=`/`headers=` as given)."""
    async with client(app) as http:
        if body is not None:
            kwargs["json"] = body
        return await http.post("/score", **kwargs)  # type: ignore[arg-type]


# --- liveness, readiness and routing --------------------------------------------------------------------


async def test_liveness_answers_healthy(make_app: MakeApp) -> None:
    async with client(make_app(None)) as http:
        response = await http.get("/")
        head = await http.head("/")
    assert response.status_code == 200
    assert response.text == "Healthy"
    assert response.headers["content-type"].startswith("text/plain")
    assert head.status_code == 200
    assert head.content == b""


async def test_ready_is_503_until_the_script_is_set(make_app: MakeApp, scripts: Path) -> None:
    app = make_app(None)
    async with client(app) as http:
        before = await http.get("/ready")
        entry = load_entry_script(scripts / "echo.py")
        app.script = entry
        loaded_not_initialised = await http.get("/ready")
        entry.init()
        after = await http.get("/ready")
        head = await http.head("/ready")
    assert before.status_code == 503
    assert before.json() == {"status": "loading", "message": "init() has not finished yet."}
    assert loaded_not_initialised.status_code == 503
    assert after.status_code == 200
    assert after.json() == {"status": "ready"}
    assert head.status_code == 200
    assert head.content == b""


async def test_score_before_the_script_is_loaded_is_a_503(make_app: MakeApp) -> None:
    response = await score(make_app(None), {"data": [1]})
    assert response.status_code == 503
    assert "init()" in response.json()["message"]


@pytest.mark.parametrize(("path", "allow"), [("/score", "GET, POST, OPTIONS"), ("/", "GET, HEAD, OPTIONS")])
async def test_options_lists_the_methods(make_app: MakeApp, path: str, allow: str) -> None:
    async with client(make_app()) as http:
        response = await http.options(path)
    assert response.status_code == 200
    assert response.headers["allow"] == allow
    assert response.content == b""


@pytest.mark.parametrize("path", ["/nope", "/score/", "/v1/models/x:predict", "/swagger.jsonx"])
async def test_unknown_path_is_a_json_404(make_app: MakeApp, path: str) -> None:
    async with client(make_app()) as http:
        response = await http.get(path)
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/json"
    assert response.json()["message"].startswith(f"No route {path}. Routes: GET / (liveness)")


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
async def test_wrong_method_is_a_json_405_with_allow(make_app: MakeApp, method: str, path: str, allow: str) -> None:
    async with client(make_app()) as http:
        response = await http.request(method, path)
    assert response.status_code == 405
    assert response.headers["allow"] == allow
    assert response.headers["content-type"] == "application/json"
    if method != "HEAD":
        assert response.json() == {"message": f"{method} is not allowed on {path}; use {allow}."}


async def test_lifespan_messages_are_ignored(make_app: MakeApp) -> None:
    sent: list[object] = []

    async def receive() -> dict[str, object]:
        return {"type": "lifespan.startup"}

    async def send(message: object) -> None:
        sent.append(message)

    await make_app()({"type": "lifespan"}, receive, send)
    assert sent == []


# --- /score -------------------------------------------------------------------------------------------


async def test_post_score_calls_run(make_app: MakeApp) -> None:
    response = await score(make_app(), {"data": [[1, 2], [3, 4]]})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert json.loads(response.json()["received"]) == [[1, 2], [3, 4]]
    assert response.headers["x-ms-run-function-failed"] == "False"
    assert EXEC_MS.match(response.headers["x-ms-run-fn-exec-ms"])
    assert response.headers["x-ms-server-version"] == f"scorehost/{__version__}"


async def test_get_score_gives_run_the_query(make_app: MakeApp) -> None:
    async with client(make_app(run_input=RunInput.BODY)) as http:
        response = await http.get("/score", params=[("echo", "1"), ("a", "1"), ("a", "2"), ("d", "[1,2]")])
        empty = await http.get("/score")
    assert response.status_code == 200
    assert response.json() == {"received": '{"echo": 1, "a": [1, 2], "d": [1, 2]}'}
    assert empty.json() == {"received": "{}"}


async def test_get_score_with_data_under_auto(make_app: MakeApp) -> None:
    async with client(make_app()) as http:
        response = await http.get("/score", params={"data": "[[1, 2]]"})
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
async def test_auto_runs_every_kind_of_script(make_app: MakeApp, script: str, body: object, expected: object) -> None:
    response = await score(make_app(script), body)
    assert response.status_code == 200, response.text
    assert response.json() == expected


async def test_auto_with_curl_style_form_content_type(make_app: MakeApp) -> None:
    """`curl -d '{"data": ...}'` sends application/x-www-form-urlencoded."""
    response = await score(
        make_app("sklearn_doc.py"),
        content=b'{"data": [[3.0, 2.0]]}',
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 200
    assert response.json() == [1]


async def test_run_input_body_passes_the_raw_body(make_app: MakeApp) -> None:
    raw = b'{ "data" : [1,  2] }\n'
    response = await score(make_app(run_input=RunInput.BODY), content=raw)
    assert response.json() == {"received": raw.decode()}


async def test_run_input_data_without_a_data_key_is_a_400(make_app: MakeApp) -> None:
    response = await score(make_app(run_input=RunInput.DATA), {"input": [1]})
    assert response.status_code == 400
    assert response.json()["message"].startswith("The body has no \"data\" key (keys: 'input')")
    assert response.headers["x-ms-run-function-failed"] == "False"
    assert "x-ms-run-fn-exec-ms" not in response.headers


async def test_non_utf8_body_is_a_400(make_app: MakeApp) -> None:
    response = await score(make_app(), content=b"\xff\xfe{}", headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert response.json()["message"].startswith(
        "Input cannot be decoded as UTF-8: 'utf-8' codec can't decode byte 0xff in position 0"
    )
    assert response.headers["x-ms-run-function-failed"] == "False"


async def test_empty_body_reaches_run_as_empty_text(make_app: MakeApp) -> None:
    response = await score(make_app(), content=b"")
    assert response.status_code == 200
    assert response.json() == {"received": ""}


# --- what run() returns ----------------------------------------------------------------------------------


async def test_numpy_and_pandas_results(make_app: MakeApp) -> None:
    response = await score(make_app("returns_numpy.py"), {"data": 1})
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
async def test_plain_results(make_app: MakeApp, name: str, content: bytes, content_type: str) -> None:
    response = await score(make_app("returns_plain.py"), {"data": name})
    assert response.status_code == 200
    assert response.content == content
    assert response.headers["content-type"] == content_type


async def test_run_raising_is_a_500_with_the_message(make_app: MakeApp, caplog: pytest.LogCaptureFixture) -> None:
    response = await score(make_app("run_raises.py"), {"data": [1]}, headers={"x-request-id": "req-raises"})
    assert response.status_code == 500
    assert response.json() == {"message": "run() raised ValueError: cannot score [1]"}
    assert response.headers["x-ms-run-function-failed"] == "True"
    assert "x-ms-run-fn-exec-ms" not in response.headers
    assert response.headers["x-request-id"] == "req-raises"
    # The log has the user's traceback, tagged with the request id.
    (record,) = [r for r in caplog.records if r.name == "scorehost.worker"]
    assert record.levelno == logging.ERROR
    assert record.request_id == "req-raises"  # type: ignore[attr-defined]
    assert 'raise ValueError(f"cannot score {value}")' in record.getMessage()


async def test_unserializable_result_is_a_distinct_500(make_app: MakeApp) -> None:
    response = await score(make_app("unserializable.py"), {"data": 1})
    assert response.status_code == 500
    message = response.json()["message"]
    assert "type entry_module.Opaque is not JSON serializable" in message
    assert response.headers["x-ms-run-function-failed"] == "False"
    assert "x-ms-run-fn-exec-ms" not in response.headers


async def test_request_headers_script_gets_title_case_headers(make_app: MakeApp) -> None:
    response = await score(
        make_app("request_headers.py"), {"data": 1}, headers={"X-Custom": "custom-value", "x-request-id": "rid-7"}
    )
    assert response.status_code == 200
    result = response.json()
    headers = result["headers"]
    assert headers["X-Custom"] == "custom-value"
    assert headers["X-Request-Id"] == "rid-7"
    assert headers["Content-Type"] == "application/json"
    assert headers["Host"] == "scorehost.test"
    assert all(name == name.title() for name in headers)
    assert result["lower_case_lookup"] is None  # lookups are case-sensitive, as on the reference
    assert result["data"] == "1"


# --- request ids ---------------------------------------------------------------------------------------


async def test_new_request_id_when_none_is_sent(make_app: MakeApp) -> None:
    response = await score(make_app(), {"data": 1})
    request_id = response.headers["x-request-id"]
    assert uuid.UUID(request_id).version == 4
    assert response.headers["x-ms-request-id"] == request_id
    assert "x-ms-client-request-id" not in response.headers


async def test_client_request_id_and_trace_id_are_echoed(make_app: MakeApp) -> None:
    response = await score(make_app(), {"data": 1}, headers={"x-ms-client-request-id": "C-1", "TraceId": "T-9"})
    assert response.headers["x-ms-request-id"] == "C-1"
    assert response.headers["x-ms-client-request-id"] == "C-1"
    assert response.headers["traceid"] == "T-9"
    assert response.headers["x-request-id"] != "C-1"


async def test_error_replies_carry_the_request_ids(make_app: MakeApp) -> None:
    response = await score(make_app("run_raises.py"), {"data": 1}, headers={"x-request-id": "R-2"})
    assert response.headers["x-request-id"] == "R-2"
    assert response.headers["x-ms-request-id"] == "R-2"


@pytest.mark.parametrize("name", ["x-request-id", "x-ms-request-id", "x-ms-client-request-id"])
async def test_request_id_over_100_characters_is_a_431(make_app: MakeApp, name: str) -> None:
    response = await score(make_app(), {"data": 1}, headers={name: "x" * 101})
    assert response.status_code == 431
    assert response.json()["message"].endswith("must not exceed 100 characters")
    assert "x-request-id" not in response.headers
    assert "x-ms-request-id" not in response.headers


# --- body size limit -------------------------------------------------------------------------------------


async def test_body_at_the_limit_is_accepted(make_app: MakeApp) -> None:
    body = b'"' + b"a" * 98 + b'"'
    assert len(body) == 100
    response = await score(make_app(run_input=RunInput.BODY, max_body_size=100), content=body)
    assert response.status_code == 200
    assert response.json() == {"received": body.decode()}


async def test_content_length_one_byte_over_the_limit_is_a_413(make_app: MakeApp) -> None:
    response = await score(make_app(max_body_size=100), content=b"x" * 101)
    assert response.status_code == 413
    assert response.json() == {
        "message": "The body is larger than the 100-byte limit; send less, or raise --max-body-size."
    }
    assert response.headers["connection"] == "close"
    assert response.headers["x-ms-run-function-failed"] == "False"


async def test_content_length_is_checked_before_the_body_is_read(make_app: MakeApp) -> None:
    """A huge Content-Length is refused at once, without reading a byte of the body."""
    app = make_app(max_body_size=100)
    messages: list[dict[str, object]] = []
    reads = 0

    async def receive() -> dict[str, object]:
        nonlocal reads
        reads += 1
        return {"type": "http.request", "body": b"x" * 100, "more_body": True}

    async def send(message: dict[str, object]) -> None:
        messages.append(message)

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/score",
        "query_string": b"",
        "headers": [(b"content-length", str(10**12).encode()), (b"content-type", b"application/json")],
    }
    await app(scope, receive, send)
    assert reads == 0
    assert messages[0]["status"] == 413


async def chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


async def test_streamed_body_over_the_limit_is_a_413(make_app: MakeApp) -> None:
    async with client(make_app(max_body_size=100)) as http:
        response = await http.post("/score", content=chunks(b"x" * 60, b"y" * 41))
    assert response.status_code == 413
    assert response.headers["connection"] == "close"


async def test_streamed_body_under_the_limit_is_joined(make_app: MakeApp) -> None:
    parts = [b'{"da', b'ta": [1, ', b"2, 3]}"]
    async with client(make_app(max_body_size=100)) as http:
        response = await http.post("/score", content=chunks(*parts))
    assert response.status_code == 200
    assert json.loads(response.json()["received"]) == [1, 2, 3]


# --- deadlines -------------------------------------------------------------------------------------------


async def test_run_past_the_deadline_is_a_504(make_app: MakeApp) -> None:
    app = make_app("slow.py", timeout=0.2)
    started = time.monotonic()
    response = await score(app, {"data": 0.6})
    elapsed = time.monotonic() - started
    assert response.status_code == 504
    message = response.json()["message"]
    assert message.startswith("run() did not finish within the 200 ms scoring timeout")
    assert "--timeout / SCORING_TIMEOUT_MS" in message
    assert response.headers["x-ms-run-function-failed"] == "True"
    assert "x-ms-run-fn-exec-ms" not in response.headers
    assert elapsed < 0.55  # answered at the deadline, not when run() returned

    # The worker keeps serving once the slow call is over.
    assert app.script is not None
    while app.script.module.running:
        await asyncio.sleep(0.02)
    response = await score(app, {"data": 0})
    assert response.status_code == 200
    assert response.json()["slept"] == 0


async def test_request_queued_past_its_deadline_is_a_504_and_never_runs(
    make_app: MakeApp, capsys: pytest.CaptureFixture[str]
) -> None:
    app = make_app("slow.py", timeout=0.3)
    async with client(app) as http:
        first = asyncio.ensure_future(http.post("/score", json={"data": 0.6}))
        await asyncio.sleep(0.05)
        second = await http.post("/score", json={"data": 0.01})
        assert (await first).status_code == 504
        assert second.status_code == 504
        assert second.json()["message"].startswith("The request waited 300 ms behind other requests and was not run")
        assert second.headers["x-ms-run-function-failed"] == "True"
        # Once the slow call is over, a new request runs, after the expired one left the queue unrun.
        assert app.script is not None
        while app.script.module.running:
            await asyncio.sleep(0.02)
        third = await http.post("/score", json={"data": 0})
    assert third.status_code == 200
    printed = capsys.readouterr().out
    assert "sleeping 0.6 s" in printed
    assert "sleeping 0.0 s" in printed
    assert "sleeping 0.01 s" not in printed


# --- access log ------------------------------------------------------------------------------------------


async def test_one_access_line_per_request(
    make_app: MakeApp, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.INFO, logger="scorehost.access")
    app = make_app(access_log=AccessLog("text"))
    response = await score(app, {"data": 1}, headers={"x-request-id": "log-1"})
    async with client(app) as http:
        await http.get("/nope")
    lines = [line for line in capfd.readouterr().err.splitlines() if "scorehost.access" in line]
    assert len(lines) == 2
    assert re.search(rf"\[log-1\] POST /score 200 \d+\.\d{{3}}ms {len(response.content)}B$", lines[0])
    assert re.search(r" GET /nope 404 \d+\.\d{3}ms \d+B$", lines[1])
