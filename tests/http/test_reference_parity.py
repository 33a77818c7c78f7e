"""scorehost next to Microsoft's reference server (azmlinfsrv), behaviour by behaviour, over real HTTP.

The same entry script runs under both servers and the answers are compared. The reference is never imported
here: it runs as a subprocess from its own virtual environment, found through $SCOREHOST_REFERENCE_AZMLINFSRV
(the path of its `azmlinfsrv`), /tmp/azml/bin/azmlinfsrv or $SCOREHOST_REFERENCE_VENV/bin/azmlinfsrv; without
one the module is skipped. .ci/run installs it.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import SCRIPTS, Server, kill, start_server, wait_ready

REFERENCE_VERSION = "azureml-inference-server-http==1.5.1"


def _find_reference() -> Path | None:
    candidates = []
    if os.environ.get("SCOREHOST_REFERENCE_AZMLINFSRV"):
        candidates.append(Path(os.environ["SCOREHOST_REFERENCE_AZMLINFSRV"]))
    candidates.append(Path("/tmp/azml/bin/azmlinfsrv"))
    if os.environ.get("SCOREHOST_REFERENCE_VENV"):
        candidates.append(Path(os.environ["SCOREHOST_REFERENCE_VENV"]) / "bin" / "azmlinfsrv")
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


AZMLINFSRV = _find_reference()
if AZMLINFSRV is None:
    pytest.skip(
        "the reference server is not installed: python -m venv /tmp/azml && "
        f"/tmp/azml/bin/pip install {REFERENCE_VERSION} "
        "(or point SCOREHOST_REFERENCE_AZMLINFSRV at an azmlinfsrv, or SCOREHOST_REFERENCE_VENV at its venv)",
        allow_module_level=True,
    )

GENERIC_500 = {"message": "An unexpected error occurred in scoring script. Check the logs for more info."}
SECRET = "postgresql://admin:hunter2@db/x"
ID_HEADERS = ("x-ms-request-id", "x-request-id", "x-ms-server-version", "x-ms-run-function-failed")
# Set by each server's HTTP layer, not by the application: not compared. Content-Length / Transfer-Encoding
# are framing, which either server may choose per reply.
NOT_COMPARED = {"connection", "date", "server", "keep-alive", "content-length", "transfer-encoding"}
# The reference's settings: none of the developer's may leak into it.
_REFERENCE_VARIABLES = re.compile(
    r"^(AZUREML_|AML_|SERVICE_|WORKER_|APP_INSIGHTS_|SCOREHOST_|OTEL_EXPORTER_OTLP_|SERVER_PORT$|HEALTH_PORT$|"
    r"SCORING_TIMEOUT_MS$|SEPERATE_HEALTH_ENDPOINT$|SERVER_VERSION_LOG_RESPONSE_ENABLED$|PYTHONPATH$)"
)


# --- the reference server, as a subprocess --------------------------------------------------------------------


@dataclass
class Reference:
    """A running `azmlinfsrv` (gunicorn master and worker, one process group) and its log file."""

    process: subprocess.Popen[bytes]
    port: int
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"  # it binds 0.0.0.0

    @property
    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def client(self, **kwargs: Any) -> httpx.Client:
        kwargs.setdefault("timeout", 30)
        return httpx.Client(base_url=self.url, **kwargs)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("0.0.0.0", 0))
        return int(sock.getsockname()[1])


def start_reference(script: Path, log_path: Path, env: dict[str, str] | None = None) -> Reference:
    """`azmlinfsrv --entry_script SCRIPT --port P`, run from the script's folder (its AML_APP_ROOT); returns at once."""
    assert AZMLINFSRV is not None
    port = _free_port()
    base = {name: value for name, value in os.environ.items() if not _REFERENCE_VARIABLES.match(name)}
    with log_path.open("wb") as log:  # the child keeps its own descriptor
        process = subprocess.Popen(
            [str(AZMLINFSRV), "--entry_script", str(script), "--port", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=script.parent,
            env={**base, **(env or {})},
            start_new_session=True,
        )
    return Reference(process, port, log_path)


def wait_reference_ready(reference: Reference, timeout: float = 60) -> Reference:
    """Readiness is the first answer to GET /: the reference answers nothing until init() has finished."""
    deadline = time.monotonic() + timeout
    with reference.client(timeout=2) as client:
        while time.monotonic() < deadline:
            if reference.process.poll() is not None:
                raise AssertionError(f"reference exited with {reference.process.returncode}:\n{reference.log}")
            with contextlib.suppress(httpx.TransportError):
                if client.get("/").status_code == 200:
                    return reference
            time.sleep(0.05)
    raise AssertionError(f"reference never became ready:\n{reference.log}")


def stop_reference(reference: Reference) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(reference.process.pid, signal.SIGKILL)
    reference.process.wait(10)


@dataclass
class Pair:
    ours: Server
    reference: Reference


@contextlib.contextmanager
def both(script: Path, tmp: Path, env: dict[str, str] | None = None) -> Iterator[Pair]:
    """The same script under both servers (started side by side), both killed on the way out."""
    reference = start_reference(script, tmp / f"reference-{script.parent.name}-{script.stem}.log", env)
    ours: Server | None = None
    try:
        ours = start_server([str(script)], env=env, cwd=script.parent)
        wait_reference_ready(reference)
        wait_ready(ours)
        yield Pair(ours, reference)
    finally:
        stop_reference(reference)
        if ours is not None:
            kill(ours)


@pytest.fixture(scope="module")
def tmp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("reference")


@pytest.fixture(scope="module")
def echo(tmp: Path) -> Iterator[Pair]:
    with both(SCRIPTS / "echo.py", tmp) as pair:
        yield pair


def ask(url: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
    with httpx.Client(base_url=url, timeout=30) as client:
        return client.request(method, path, **kwargs)


def post_both(pair: Pair, content: bytes, headers: dict[str, str] | None = None) -> tuple[httpx.Response, ...]:
    headers = {"content-type": "application/json", **(headers or {})}
    return tuple(
        ask(url, "POST", "/score", content=content, headers=headers) for url in (pair.ours.url, pair.reference.url)
    )


def same_json(left: object, right: object) -> bool:
    """Equality of decoded JSON where NaN equals NaN."""
    if isinstance(left, float) and isinstance(right, float) and math.isnan(left) and math.isnan(right):
        return True
    if isinstance(left, dict) and isinstance(right, dict):
        return left.keys() == right.keys() and all(same_json(left[key], right[key]) for key in left)
    if isinstance(left, list) and isinstance(right, list):
        return len(left) == len(right) and all(same_json(a, b) for a, b in zip(left, right, strict=True))
    return type(left) is type(right) and left == right


# --- 1. run() raising: a generic 500, the details only in the log ----------------------------------------------


def test_run_raising_hides_the_message_from_the_client(tmp: Path) -> None:
    with both(SCRIPTS / "run_raises_secret.py", tmp) as pair:
        ours, reference = post_both(pair, b'{"data": 1}', {"x-request-id": "leak-1"})
        for name, response in (("reference", reference), ("scorehost", ours)):
            assert response.status_code == 500, f"{name}: {response.status_code} {response.text}"
            assert "hunter2" not in response.text, f"{name} sent the password: {response.text}"
            assert response.json() == GENERIC_500, f"{name}: {response.text}"
            assert response.headers.get("x-ms-run-function-failed") == "True", f"{name}: {dict(response.headers)}"
        # The operator still sees what went wrong, tied to the request.
        pair.ours.wait_for_log(rf"leak-1.*{re.escape(SECRET)}")


# --- 2. NaN and infinities: bare literals, as Python's json.dumps writes them -------------------------------------


NAN_RESULT = {"x": math.nan, "y": math.inf, "z": -math.inf, "a": [1.5, math.nan]}


def test_nan_and_infinity_are_sent_as_the_reference_sends_them(tmp: Path) -> None:
    with both(SCRIPTS / "returns_nan.py", tmp) as pair:
        ours, reference = post_both(pair, b'{"data": 1}')
    for name, response in (("reference", reference), ("scorehost", ours)):
        assert response.status_code == 200, (name, response.text)
        assert response.headers["content-type"] == "application/json", name
        for literal in ("NaN", "Infinity", "-Infinity"):
            assert literal in response.text, (name, response.text)
        assert same_json(json.loads(response.text), NAN_RESULT), (name, response.text)
    assert same_json(json.loads(ours.text), json.loads(reference.text))


def test_numpy_nan_and_infinity_are_not_null() -> None:
    # The reference cannot send numpy at all (500); scorehost must send what json.dumps would for the floats.
    server = wait_ready(start_server([str(SCRIPTS / "returns_numpy_nan.py")]))
    try:
        response = ask(server.url, "POST", "/score", json={"data": 1})
    finally:
        kill(server)
    assert response.status_code == 200, response.text
    for literal in ("NaN", "Infinity", "-Infinity"):
        assert literal in response.text, response.text
    assert same_json(json.loads(response.text), {"array": [0.5, math.nan, math.inf, -math.inf]}), response.text


# --- 3. headers on every answer ------------------------------------------------------------------------------


HEADER_CASES = {
    "options-score": ("OPTIONS", "/score", {}),
    "get-root": ("GET", "/", {}),
    "swagger": ("GET", "/swagger.json", {}),
    "not-found": ("GET", "/nope", {}),
    "method-not-allowed": ("PUT", "/score", {"content": b"{}"}),
    "request-id-too-long": ("POST", "/score", {"content": b"{}", "headers": {"x-request-id": "x" * 101}}),
}


@pytest.mark.parametrize("case", HEADER_CASES)
def test_status_and_headers(echo: Pair, case: str) -> None:
    method, path, kwargs = HEADER_CASES[case]
    ours = ask(echo.ours.url, method, path, **kwargs)
    reference = ask(echo.reference.url, method, path, **kwargs)
    assert ours.status_code == reference.status_code, f"scorehost: {ours.text}; reference: {reference.text}"
    our_names = set(ours.headers.keys())
    # On every answer, where the reference misses some (404, 405, 431, GET /).
    absent = [name for name in ID_HEADERS if name not in our_names]
    assert not absent, f"scorehost lacks {absent} on {case}: {dict(ours.headers)}"
    missing = set(reference.headers.keys()) - NOT_COMPARED - our_names
    assert not missing, f"scorehost lacks {missing}: {dict(ours.headers)}; reference: {dict(reference.headers)}"


@pytest.mark.parametrize(("method", "path"), [("POST", "/score"), ("GET", "/")])
def test_client_request_id_is_echoed_on_both(echo: Pair, method: str, path: str) -> None:
    kwargs: dict[str, Any] = {"headers": {"x-request-id": "abc-123"}}
    if method == "POST":
        kwargs["content"] = b'{"a": 1}'
    for url in (echo.reference.url, echo.ours.url):
        response = ask(url, method, path, **kwargs)
        assert response.status_code == 200, f"{url}: {response.text}"
        ids = {name: response.headers.get(name) for name in ("x-request-id", "x-ms-request-id")}
        assert ids == {"x-request-id": "abc-123", "x-ms-request-id": "abc-123"}, f"{url}: {dict(response.headers)}"


@pytest.mark.parametrize(("method", "path"), [("GET", "/nope"), ("PUT", "/score"), ("OPTIONS", "/score")])
def test_client_request_id_is_echoed_on_routing_errors_too(echo: Pair, method: str, path: str) -> None:
    # Beyond the reference, which drops the ids on its routing-level 404/405.
    response = ask(echo.ours.url, method, path, headers={"x-request-id": "abc-123"})
    ids = {name: response.headers.get(name) for name in ("x-request-id", "x-ms-request-id")}
    assert ids == {"x-request-id": "abc-123", "x-ms-request-id": "abc-123"}, dict(response.headers)


# --- 4. GET / while init() runs, and when it fails -----------------------------------------------------------


def _status(client: httpx.Client, path: str) -> tuple[int, str] | None:
    """(status, body) of GET path, or None when no answer came."""
    try:
        response = client.get(path)
    except httpx.TransportError:
        return None
    return response.status_code, response.text


def _listening_url(server: Server, timeout: float = 30) -> str:
    line = server.wait_for_log(r"starting on http://", timeout)  # bound; "listening on" comes after init()
    match = re.search(r"starting on (\S+)", line)
    assert match
    return match.group(1)


def test_root_is_not_healthy_before_init_has_finished(tmp: Path) -> None:
    releases = {name: tmp / f"release-{name}" for name in ("ours", "reference")}
    ours_env = {"RELEASE_INIT": str(releases["ours"])}
    reference_env = {"RELEASE_INIT": str(releases["reference"])}
    script = SCRIPTS / "waits_in_init.py"
    reference = start_reference(script, tmp / "reference-waits_in_init.log", reference_env)
    ours = start_server([str(script)], env=ours_env, cwd=script.parent)
    try:
        ours.url = _listening_url(ours)
        ours_root: list[tuple[int, str] | None] = []
        ours_live: list[tuple[int, str] | None] = []
        reference_root: list[tuple[int, str] | None] = []
        with ours.client(timeout=2) as ours_client, reference.client(timeout=0.3) as reference_client:
            deadline = time.monotonic() + 2.5  # init() cannot finish in this window: the release files are absent
            while time.monotonic() < deadline:
                ours_root.append(_status(ours_client, "/"))
                ours_live.append(_status(ours_client, "/live"))
                reference_root.append(_status(reference_client, "/"))
                time.sleep(0.1)
            assert ours.process.poll() is None, ours.log
            assert reference.process.poll() is None, reference.log
            releases["ours"].touch()
            releases["reference"].touch()
            wait_reference_ready(reference)
            wait_ready(ours)
            assert _status(ours_client, "/") == (200, "Healthy")
            assert _status(reference_client, "/") == (200, "Healthy")
    finally:
        stop_reference(reference)
        kill(ours)
    assert all(answer is None for answer in reference_root), reference_root  # it answers nothing during init()
    assert all(answer is None or answer[0] != 200 for answer in ours_root), ours_root
    answered = [answer for answer in ours_root if answer is not None]
    assert answered, "scorehost never answered GET / during init()"
    for status, body in answered:
        assert status == 503, answered
        assert isinstance(json.loads(body).get("message"), str), body
    assert ours_live, ours_live
    assert all(answer is not None and answer[0] == 200 for answer in ours_live), ours_live


def test_init_failing_exits_3_and_is_never_healthy(tmp: Path) -> None:
    script = SCRIPTS / "init_fails.py"
    reference = start_reference(script, tmp / "reference-init_fails.log")
    ours = start_server([str(script)], cwd=script.parent)
    try:
        answers: list[tuple[str, tuple[int, str] | None]] = []
        deadline = time.monotonic() + 60
        with httpx.Client(timeout=0.5) as client:
            while time.monotonic() < deadline and (ours.process.poll() is None or reference.process.poll() is None):
                if reference.process.poll() is None:
                    answers.append(("reference", _status(client, f"{reference.url}/")))
                if ours.process.poll() is None and not ours.url:
                    match = re.search(r"starting on (http://\S+)", ours.log)
                    ours.url = match.group(1) if match else ""
                if ours.process.poll() is None and ours.url:
                    answers.append(("scorehost", _status(client, f"{ours.url}/")))
                time.sleep(0.05)
        assert reference.process.wait(10) == 3, reference.log
        assert ours.wait_exit(10) == 3, ours.log
    finally:
        stop_reference(reference)
        kill(ours)
    assert not [answer for answer in answers if answer[1] is not None and answer[1][0] == 200], answers


# --- 5. an undecorated script that reads "data" in a helper module of its folder ------------------------------


def test_data_key_read_in_a_helper_module(tmp: Path) -> None:
    with both(SCRIPTS / "data_key_in_helper" / "score.py", tmp) as pair:
        ours, reference = post_both(pair, b'{"data": [[1, 2], [3, 4]]}')
    assert reference.status_code == 200, reference.text
    assert ours.status_code == reference.status_code, ours.text
    assert ours.json() == reference.json() == {"rows": 2, "total": 10}


# --- 6. the success path ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [{"a": 1, "b": [1.5, None, True]}, [1, 2, 3], "hello", "caf\u00e9 \u2603"],
    ids=["dict", "list", "string", "unicode"],
)
def test_success_gives_the_same_json(echo: Pair, body: object) -> None:
    ours, reference = post_both(echo, json.dumps(body, ensure_ascii=False).encode())
    assert reference.status_code == 200, reference.text
    assert ours.status_code == reference.status_code, ours.text
    assert ours.headers["content-type"] == reference.headers["content-type"]
    assert ours.json() == reference.json()
