"""The server's log: access lines, the script's prints and logging tagged with the request id, JSON lines."""

from __future__ import annotations

import json
import re
from collections.abc import Callable

from conftest import Server

Serve = Callable[..., Server]

ACCESS = re.compile(
    r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}Z INFO  \[(?P<pid>\d+)\] scorehost\.access -(?: \[(?P<id>[^\]]+)\])? "
    r"(?P<method>[A-Z]+) (?P<path>\S+) (?P<status>\d{3}) (?P<ms>\d+\.\d{3})ms (?P<bytes>\d+)B$"
)


def access_lines(server: Server) -> list[re.Match[str]]:
    return [match for line in server.lines if (match := ACCESS.match(line))]


def test_one_access_line_per_request(serve: Serve) -> None:
    server = serve("echo.py")
    with server.client() as client:
        for n in range(3):
            client.post("/score", json={"data": n}, headers={"x-request-id": f"access-{n}"})
        client.post("/score", content=b"\xff", headers={"x-request-id": "access-bad"})
        health = client.get("/")
        refused = client.put("/score")
    server.wait_for_log(r"PUT /score 405")
    lines = access_lines(server)
    scored = [m for m in lines if m["path"] == "/score" and m["method"] == "POST"]
    assert [(m["id"], m["status"]) for m in scored] == [
        ("access-0", "200"),
        ("access-1", "200"),
        ("access-2", "200"),
        ("access-bad", "400"),
    ]
    assert scored[0]["bytes"] == str(len(b'{"received":"0"}'))
    assert all(float(m["ms"]) >= 0 for m in lines)
    # Every route carries a request id now, the one its answer's x-request-id gives (/ready: the fixture's
    # readiness checks).
    assert all(m["id"] for m in lines)
    others = [m for m in lines if m["path"] != "/ready" and not (m["path"] == "/score" and m["method"] == "POST")]
    assert [(m["id"], m["method"], m["path"], m["status"]) for m in others] == [
        (health.headers["x-request-id"], "GET", "/", "200"),
        (refused.headers["x-request-id"], "PUT", "/score", "405"),
    ]


def test_prints_and_logging_in_run_carry_the_request_id(serve: Serve) -> None:
    server = serve("prints.py")
    with server.client() as client:
        response = client.post("/score", json={"data": [1]}, headers={"x-request-id": "print-1"})
    assert response.json() == "printed"
    server.wait_for_log(r"INFO  \[\d+\] scorehost\.print - \[print-1\] hello from run: \[1\]$")
    server.wait_for_log(r"WARNING \[\d+\] prints_script - \[print-1\] logged from run$")
    # init() prints too, outside any request.
    server.wait_for_log(r"INFO  \[\d+\] scorehost\.print - hello from init$")


def test_json_log_format_is_one_object_per_line(serve: Serve) -> None:
    server = serve("prints.py", "--log-format", "json")
    with server.client() as client:
        client.post("/score", json={"data": "x"}, headers={"x-request-id": "json-1"})
    server.wait_for_log(r'"message":"POST /score 200 ')
    records = []
    for line in server.lines:
        record = json.loads(line)  # every line, the start-up banner included
        assert isinstance(record, dict)
        assert {"time", "level", "logger", "pid", "message"} <= set(record)
        records.append(record)
    assert any(r["message"].startswith("listening on http://") for r in records)
    access = next(r for r in records if r["logger"] == "scorehost.access" and r["path"] == "/score")
    assert access["request_id"] == "json-1"
    assert (access["method"], access["status"], access["bytes"]) == ("POST", 200, len(b'"printed"'))
    assert isinstance(access["duration_ms"], float)
    printed = next(r for r in records if r["message"] == 'hello from run: "x"')
    assert (printed["logger"], printed["level"], printed["request_id"]) == ("scorehost.print", "info", "json-1")
    logged = next(r for r in records if r["message"] == "logged from run")
    assert (logged["logger"], logged["level"], logged["request_id"]) == ("prints_script", "warning", "json-1")


def test_the_scripts_lines_carry_the_callers_trace_id(serve: Serve) -> None:
    trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    server = serve("prints.py", "--log-format", "json")
    with server.client() as client:
        reply = client.post("/score", json={"data": "t"}, headers={"traceparent": f"00-{trace}-00f067aa0ba902b7-01"})
    assert reply.headers["traceresponse"].startswith(f"00-{trace}-")
    server.wait_for_log(r"logged from run")
    server.wait_for_log(r"POST /score 200")  # the access line is written after the answer: wait for it too
    records = [json.loads(line) for line in server.lines]
    printed = next(r for r in records if r["message"] == 'hello from run: "t"')
    logged = next(r for r in records if r["message"] == "logged from run")
    assert printed["trace_id"] == logged["trace_id"] == trace
    access = next(r for r in records if r["logger"] == "scorehost.access" and r["path"] == "/score")
    assert access["trace_id"] == trace


def test_json_log_format_keeps_tracebacks_inside_one_line(serve: Serve) -> None:
    server = serve("init_fails.py", "--log-format", "json", ready=False)
    assert server.wait_exit(60) == 3
    records = [json.loads(line) for line in server.lines]
    failure = next(r for r in records if r["level"] == "error")
    assert "init() in init_fails.py raised RuntimeError: model file is corrupt" in failure["message"]
    assert "Traceback (most recent call last):" in failure["message"]


def test_json_log_format_for_run_failures(serve: Serve) -> None:
    server = serve("run_raises.py", "--log-format", "json")
    with server.client() as client:
        assert client.post("/score", json={"data": 1}, headers={"x-request-id": "json-err"}).status_code == 500
    server.wait_for_log(r'"message":"POST /score 500 ')
    records = [json.loads(line) for line in server.lines]
    error = next(r for r in records if r["level"] == "error")
    assert error["request_id"] == "json-err"
    assert error["message"].startswith("run() raised ValueError: cannot score 1\nTraceback")


def test_run_failure_traceback_is_tagged_in_text_logs(serve: Serve) -> None:
    server = serve("run_raises.py")
    with server.client() as client:
        client.post("/score", json={"data": 5}, headers={"x-request-id": "text-err"})
    line = server.wait_for_log(
        r"ERROR \[\d+\] scorehost\.worker - \[text-err\] run\(\) raised ValueError: cannot score"
    )
    following = server.lines[server.lines.index(line) + 1 :]
    assert following[0] == "Traceback (most recent call last):"
    assert any('run_raises.py", line 9, in check' in text for text in following)


def test_payloads_and_keys_never_reach_the_log(serve: Serve) -> None:
    marker, secret = "payload-7f3a9c", "key-5e1d2b"
    server = serve("batch_echo.py", "--log-format", "json")
    auth = {"authorization": f"Bearer {secret}", "x-api-key": secret}
    with server.client() as client:
        assert client.post("/score", json={"data": marker}, headers=auth).status_code == 200
        broken = client.post("/score", content=f'{{"data": "{marker}"', headers=auth)  # not JSON: run() fails
        assert broken.status_code == 500
        client.get("/ready")
    server.wait_for_log(r"GET /ready 200")  # every line of the requests above is written before this one
    assert '"level"' in server.log  # JSON lines were written...
    assert marker not in server.log  # ...and none holds the payload
    assert secret not in server.log  # ...or the key
