"""The gateway for real: a `scorehost gateway` process, real `scorehost serve` deployments and small threading
HTTP servers as instances, with the routing table rewritten while it runs."""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
import urllib.parse
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from _otlp_receiver import Collector, attributes_of
from click.testing import CliRunner
from conftest import served, wait_for_line

from scorehost.cli import cli
from scorehost.deploy.gateway import parse_routes, routes_path, write_routes
from scorehost.errors import InvalidSpec
from scorehost.http.pipeline import RUN_FAILED_MESSAGE

KEY_A, KEY_B, KEY_C = "key-a-" + "a" * 37, "key-b-" + "b" * 37, "key-c-" + "c" * 37
TIMEOUT_S = 1.0
MAX_BODY = 1024 * 1024


class Backend:
    """An instance stand-in: answers `{"backend": name, "path": ...}`, records what it received (the bodies
    as b"" unless `keep`: large ones would fill the test's memory)."""

    def __init__(self, name: str, *, delay: float = 0.0, hang_up: bool = False, keep: bool = True) -> None:
        self.name, self.delay = name, delay
        self.received: list[tuple[str, dict[str, str], bytes]] = []
        backend = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                # headers and body leave in two writes: without NODELAY, Nagle holds the body for 40 ms
                self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                super().setup()

            def _answer(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length)
                headers = {k.lower(): v for k, v in self.headers.items()}
                backend.received.append((self.path, headers, body if keep else b""))
                time.sleep(backend.delay)
                out = json.dumps({"backend": backend.name, "path": self.path}).encode()
                try:
                    self.send_response(200)
                    self.send_header("content-type", "application/json")
                    self.send_header("x-ms-run-function-failed", "False")
                    self.send_header("content-length", str(len(out)))
                    self.end_headers()
                    self.wfile.write(out)
                except (BrokenPipeError, ConnectionResetError):  # the gateway gave up first (its 504): as a server does
                    self.close_connection = True
                    return
                self.close_connection = hang_up  # without saying so: as an idle keep-alive timeout does

            do_GET = do_POST = _answer

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Gateway:
    """A `scorehost gateway` process (`wrapper`: words before the command, such as a shell that sets limits)."""

    def __init__(self, home: Path, *args: str, wrapper: tuple[str, ...] = ()) -> None:
        self.home = home
        command = [*wrapper, sys.executable, "-m", "scorehost", "gateway", "--home", str(home), "--port", "0"]
        command += ["--timeout", str(TIMEOUT_S), "--max-body-size", str(MAX_BODY), *args]
        self.process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
        )
        self.lines: list[str] = []
        self.reader = threading.Thread(target=self._pump, daemon=True)
        self.reader.start()
        deadline = time.monotonic() + 30
        while not (match := re.search(r"listening on (http://\S+)", "\n".join(self.lines))):
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise AssertionError("the gateway did not start:\n" + "\n".join(self.lines))
            time.sleep(0.02)
        self.url = match.group(1)

    def _pump(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    def wait_for_log(self, pattern: str, timeout: float = 10) -> str:
        """Wait until a log line matches `pattern` (a regex); return that line."""
        return wait_for_line(self.lines, pattern, timeout)

    def publish(self, endpoints: dict[str, Any]) -> None:
        """Write the routing table and wait past the gateway's reload check."""
        write_routes(routes_path(self.home), {"version": 1, "endpoints": endpoints})
        time.sleep(0.2)

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)
        self.reader.join(10)
        assert self.process.stdout is not None
        self.process.stdout.close()


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    started = Gateway(tmp_path_factory.mktemp("gateway-home"))
    yield started
    started.stop()


@pytest.fixture
def client(gateway: Gateway) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gateway.url, timeout=30) as c:
        yield c


@pytest.fixture
def backends() -> Iterator[dict[str, Backend]]:
    made = {name: Backend(name) for name in ("blue", "green", "blue2")}
    yield made
    for backend in made.values():
        backend.close()


def one(url: str, *, auth: str = "none", weight: int = 100, **extra: Any) -> dict[str, Any]:
    keys = [KEY_A, KEY_B] if auth == "key" else []
    return {"auth": auth, "keys": keys, "deployments": {"blue": {"weight": weight, "targets": [url]}}, **extra}


# --- the table -------------------------------------------------------------------------------------------


def test_written_table_is_private_and_read_back(tmp_path: Path) -> None:
    path = routes_path(tmp_path)
    document = {"version": 1, "endpoints": {"mnist": one("http://127.0.0.1:9", auth="key")}}
    write_routes(path, document)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    table = parse_routes(json.loads(path.read_text()))
    assert table.endpoints["mnist"].keys == (KEY_A, KEY_B)
    assert [p.name for p in path.parent.iterdir()] == ["routes.json"]  # no temporary file left


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"endpoints": {}}, "version 1"),
        ({"version": 1, "endpoints": {"x": {}}}, "not a valid endpoint name"),
        ({"version": 1, "endpoints": {"mnist": {"auth": "key", "keys": []}}}, "at least one key"),
        ({"version": 1, "endpoints": {"mnist": {"auth": "maybe"}}}, "auth must be"),
        ({"version": 1, "endpoints": {"mnist": one("https://h:1")}}, "plain http://HOST:PORT"),
        ({"version": 1, "endpoints": {"mnist": one("unix:relative.sock")}}, "unix:/ABSOLUTE/PATH or unix:@NAME"),
        ({"version": 1, "endpoints": {"mnist": one("http://h:1/a/../b")}}, "HOST:PORT[/PREFIX]"),
        ({"version": 1, "endpoints": {"mnist": one("http://h:1/a%2Fb")}}, "HOST:PORT[/PREFIX]"),
        ({"version": 1, "endpoints": {"mnist": one("http://h:1/a?b=1")}}, "HOST:PORT[/PREFIX]"),
        ({"version": 1, "endpoints": {"mnist": one("unix:@")}}, "unix:/ABSOLUTE/PATH or unix:@NAME"),
        ({"version": 1, "endpoints": {"mnist": one("http://h:1", weight=101)}}, "weight must be"),
        ({"version": 1, "endpoints": {"mnist": one("http://h:1", mirror="green")}}, "mirror 'green'"),
        ({"version": 1, "endpoints": {"mnist": one("http://h:1", mirror_percent=-1)}}, "mirror_percent"),
    ],
)
def test_invalid_tables_are_refused_with_the_reason(tmp_path: Path, document: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidSpec, match=re.escape(message)):
        write_routes(routes_path(tmp_path), document)
    assert not routes_path(tmp_path).exists()


# --- forwarding ----------------------------------------------------------------------------------------


def test_score_is_forwarded_with_its_path_rewritten(gateway: Gateway, client: httpx.Client) -> None:
    with served("request_headers.py") as deployment:
        gateway.publish({"mnist": one(deployment.url, auth="key")})
        headers = {"Authorization": f"Bearer {KEY_A}", "X-Forwarded-For": "10.0.0.1", "x-custom": "kept"}
        reply = client.post("/endpoints/mnist/score", json={"data": [1, 2]}, headers=headers)
        assert reply.status_code == 200, reply.text
        seen = reply.json()["headers"]
        assert reply.json()["data"] == "[1,2]"
        assert "Authorization" not in seen  # the key stays at the gateway
        assert seen["X-Forwarded-For"] == "10.0.0.1, 127.0.0.1"
        assert seen["X-Custom"] == "kept"
        assert reply.headers["x-request-id"] == seen["X-Request-Id"]  # made by the gateway, echoed back
        reply = client.post("/endpoints/mnist/score?x=1", json={"data": 1}, headers={**headers, "x-request-id": "r-1"})
        assert reply.headers["x-request-id"] == "r-1" == reply.json()["headers"]["X-Request-Id"]


@pytest.mark.parametrize("abstract", [False, True], ids=["socket-file", "abstract"])
def test_an_instance_on_a_unix_socket(gateway: Gateway, client: httpx.Client, abstract: bool) -> None:
    folder = Path(f"/tmp/sh-gw-{os.getpid()}")  # short: a socket path holds at most 107 bytes
    folder.mkdir(exist_ok=True)
    path = f"@scorehost-gw-test-{os.getpid()}" if abstract else str(folder / "blue.sock")
    try:
        with served("request_headers.py", "--uds", path) as deployment:
            assert deployment.url == f"unix:{path}"
            gateway.publish({"mnist": one(deployment.url)})
            for _ in range(3):  # the same keep-alive connection, reused
                reply = client.post("/endpoints/mnist/score", json={"data": [1]})
                assert reply.status_code == 200, reply.text
                assert reply.json()["headers"]["Host"] == "localhost"
        reply = client.post("/endpoints/mnist/score", json={"data": [1]}, headers={"x-request-id": f"gone-{abstract}"})
        assert reply.status_code == 502
        # The socket path stays in the gateway's log, with the request id; the caller reads no address.
        assert "cannot be reached" in reply.json()["error"]
        assert path not in reply.text
        gateway.wait_for_log(rf"\[gone-{abstract}\] .*cannot connect to unix:{re.escape(path)}")
    finally:
        for leftover in folder.iterdir():
            leftover.unlink()
        folder.rmdir()


def test_a_target_with_a_route_prefix(gateway: Gateway, client: httpx.Client, backends: dict[str, Backend]) -> None:
    """One ingress serving many applications under route prefixes (Ray Serve's): the prefix leads the path."""
    gateway.publish({"mnist": one(backends["blue"].url + "/mnist-blue-3/")})
    reply = client.post("/endpoints/mnist/score?x=1", json={"data": 1})
    assert reply.status_code == 200, reply.text
    assert reply.json()["path"] == "/mnist-blue-3/score?x=1"
    assert client.get("/endpoints/mnist/swagger.json").json()["path"] == "/mnist-blue-3/swagger.json"


def test_swagger_and_docs_are_forwarded(gateway: Gateway, client: httpx.Client) -> None:
    with served("echo.py") as deployment:
        gateway.publish({"mnist": one(deployment.url)})
        assert client.get("/endpoints/mnist/swagger.json").json()["swagger"] == "2.0"
        page = client.get("/endpoints/mnist/docs")
        assert page.status_code == 200
        assert 'href="docs/swagger-ui.css' in page.text
        css = client.get("/endpoints/mnist/docs/swagger-ui.css")
        assert css.status_code == 200
        assert css.headers["content-type"].startswith("text/css")


def test_the_deployments_status_and_headers_pass_through(gateway: Gateway, client: httpx.Client) -> None:
    with served("run_raises.py") as deployment:
        gateway.publish({"mnist": one(deployment.url)})
        reply = client.post("/endpoints/mnist/score", json={"data": 1}, headers={"x-request-id": "through-1"})
        assert reply.status_code == 500
        assert reply.headers["x-ms-run-function-failed"] == "True"
        # The deployment's generic message passes through; what run() raised stays in the deployment's log.
        assert reply.json() == {"message": RUN_FAILED_MESSAGE}
        assert reply.headers["x-ms-request-id"]
        assert reply.headers["x-request-id"] == "through-1"
        deployment.wait_for_log(r"\[through-1\] run\(\) raised ValueError: cannot score 1$")


def test_head_and_expect_continue(gateway: Gateway, client: httpx.Client, backends: dict[str, Backend]) -> None:
    gateway.publish({"mnist": one(backends["blue"].url)})
    reply = client.head("/endpoints/mnist/swagger.json")
    assert reply.status_code == 200
    assert reply.content == b""
    assert int(reply.headers["content-length"]) > 0
    assert backends["blue"].received[-1][0] == "/swagger.json"
    host, port = client.base_url.host, client.base_url.port
    with socket.create_connection((host, port or 80), timeout=5) as raw:  # as curl sends a large body
        raw.sendall(
            b"POST /endpoints/mnist/score HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\nexpect: 100-continue\r\n\r\n"
        )
        assert raw.recv(100) == b"HTTP/1.1 100 Continue\r\n\r\n"
        raw.sendall(b"{}")
        assert raw.recv(1000).startswith(b"HTTP/1.1 200 OK\r\n")
    assert "expect" not in backends["blue"].received[-1][1]


def test_a_keep_alive_connection_the_instance_closed_is_replaced(gateway: Gateway, client: httpx.Client) -> None:
    rude = Backend("rude", hang_up=True)
    try:
        gateway.publish({"mnist": one(rude.url)})
        for i in range(20):
            assert client.post("/endpoints/mnist/score", content=b"{}").status_code == 200
            time.sleep(0.01 * (i % 2))  # the instance's close reaches the idle connection before the next, or not
        assert len(rude.received) == 20  # and no request was sent twice
    finally:
        rude.close()


def test_chunked_and_pipelined_requests(gateway: Gateway, client: httpx.Client, backends: dict[str, Backend]) -> None:
    gateway.publish({"mnist": one(backends["blue"].url)})
    reply = client.post("/endpoints/mnist/score", content=iter([b"ab", b"cd"]))  # chunked: no content-length
    assert reply.status_code == 200
    assert backends["blue"].received[-1][2] == b"abcd"
    host, port = client.base_url.host, client.base_url.port
    with socket.create_connection((host, port or 80), timeout=5) as raw:
        one_request = b"POST /endpoints/mnist/score HTTP/1.1\r\nhost: x\r\ncontent-length: 1\r\n\r\n"
        raw.sendall(one_request + b"1" + one_request + b"2" + b"GET /nope HTTP/1.1\r\nhost: x\r\n\r\n")
        received = b""
        while received.count(b"HTTP/1.1 ") < 3:
            chunk = raw.recv(65536)
            assert chunk
            received += chunk
    statuses = re.findall(rb"HTTP/1.1 (\d+)", received)
    assert statuses == [b"200", b"200", b"404"]  # in order
    assert [body for _, _, body in backends["blue"].received[-2:]] == [b"1", b"2"]


# --- the gateway's own answers ---------------------------------------------------------------------------


def test_unknown_endpoint_deployment_and_path_are_404(
    gateway: Gateway, client: httpx.Client, backends: dict[str, Backend]
) -> None:
    gateway.publish({"mnist": one(backends["blue"].url)})
    reply = client.post("/endpoints/nope/score")
    assert (reply.status_code, reply.json()) == (404, {"error": "there is no endpoint named 'nope'"})
    reply = client.post("/endpoints/mnist/score", headers={"azureml-model-deployment": "red"})
    assert reply.status_code == 404
    assert "no deployment named 'red'" in reply.json()["error"]
    assert client.get("/endpoints/mnist/admin").status_code == 404
    assert client.get("/other").status_code == 404
    assert client.get("/").text == "Healthy"


def test_missing_or_wrong_key_is_401(gateway: Gateway, client: httpx.Client, backends: dict[str, Backend]) -> None:
    gateway.publish({"mnist": one(backends["blue"].url, auth="key")})
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": KEY_A}, {"Authorization": "Basic x"}):
        reply = client.post("/endpoints/mnist/score", headers=headers)
        assert reply.status_code == 401
        assert reply.headers["www-authenticate"] == "Bearer"
        assert "needs a valid key" in reply.json()["error"]
    for key in (KEY_A, KEY_B):
        assert client.post("/endpoints/mnist/score", headers={"Authorization": f"bearer {key}"}).status_code == 200
    assert not backends["blue"].received[0][1].get("authorization")


def test_no_ready_instance_is_503_and_an_unreachable_one_502(
    gateway: Gateway, client: httpx.Client, backends: dict[str, Backend]
) -> None:
    closed = Backend("gone")
    closed.close()
    gateway.publish(
        {
            "empty": {"auth": "none", "deployments": {"blue": {"weight": 100, "targets": []}}},
            "notraffic": {"auth": "none", "deployments": {"blue": {"weight": 0, "targets": [backends["blue"].url]}}},
            "down": one(closed.url),
        }
    )
    reply = client.post("/endpoints/empty/score")
    assert reply.status_code == 503
    assert "no ready instance" in reply.json()["error"]
    assert client.post("/endpoints/notraffic/score").status_code == 503
    selected = client.post("/endpoints/notraffic/score", headers={"azureml-model-deployment": "blue"})
    assert selected.json()["backend"] == "blue"  # the header reaches a deployment without traffic
    reply = client.post("/endpoints/down/score")
    assert reply.status_code == 502
    assert "cannot be reached" in reply.json()["error"]
    # Where the instance listens (a socket path, an address) stays in the gateway's log.
    down = urllib.parse.urlsplit(closed.url)
    assert str(down.port or down.path) not in reply.text
    assert "connect" not in reply.text


def test_a_slow_deployment_is_504(gateway: Gateway, client: httpx.Client) -> None:
    slow = Backend("slow", delay=TIMEOUT_S + 1)
    try:
        gateway.publish({"mnist": one(slow.url)})
        begin = time.monotonic()
        reply = client.post("/endpoints/mnist/score")
        assert reply.status_code == 504
        assert "did not answer within" in reply.json()["error"]
        assert time.monotonic() - begin < TIMEOUT_S + 0.9
    finally:
        slow.close()


def test_a_body_over_the_limit_is_413(gateway: Gateway, client: httpx.Client, backends: dict[str, Backend]) -> None:
    gateway.publish({"mnist": one(backends["blue"].url)})
    reply = client.post("/endpoints/mnist/score", content=b"x" * (MAX_BODY + 1))
    assert reply.status_code == 413
    assert "limit" in reply.json()["error"]

    def chunks() -> Iterator[bytes]:
        for _ in range(MAX_BODY // 65536 + 2):
            yield b"y" * 65536

    with httpx.Client(base_url=client.base_url, timeout=30) as fresh:
        assert fresh.post("/endpoints/mnist/score", content=chunks()).status_code == 413
    assert client.post("/endpoints/mnist/score", content=b"z" * MAX_BODY).status_code == 200
    assert backends["blue"].received == [("/score", backends["blue"].received[0][1], b"z" * MAX_BODY)]


def http_client_post(url: str, path: str, body: bytes | Iterator[bytes]) -> tuple[int, dict[str, str], bytes]:
    """POST as Python's http.client does (and requests): the whole body first, then the answer. Bytes go
    with a content-length, an iterator chunked."""
    parsed = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parsed.hostname or "127.0.0.1", parsed.port, timeout=30)
    try:
        connection.request("POST", path, body=body, encode_chunked=not isinstance(body, bytes))
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


def chunks_of(size: int, chunk: int = 65536) -> Iterator[bytes]:
    for start in range(0, size, chunk):
        yield b"c" * min(chunk, size - start)


@pytest.mark.parametrize("size", [MAX_BODY + 1, 16 * MAX_BODY], ids=["limit+1", "16x"])
@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_a_client_that_sends_the_whole_body_first_reads_the_413(
    gateway: Gateway, client: httpx.Client, backends: dict[str, Backend], size: int, chunked: bool
) -> None:
    """The 413 goes out at once and the rest of the body is read and dropped: http.client gets to read it."""
    gateway.publish({"mnist": one(backends["blue"].url)})
    body = chunks_of(size) if chunked else b"x" * size
    status, headers, answer = http_client_post(gateway.url, "/endpoints/mnist/score", body)
    assert status == 413
    assert headers["connection"] == "close"
    assert headers["content-type"] == "application/json"
    assert json.loads(answer) == {"error": f"the body exceeds the gateway's limit of {MAX_BODY} bytes"}
    assert headers["x-request-id"]
    assert client.post("/endpoints/mnist/score", content=b"{}").status_code == 200
    assert len(backends["blue"].received) == 1  # the refused body never reached the instance


def test_a_declared_length_past_what_is_drained_is_refused_at_once(
    gateway: Gateway, backends: dict[str, Backend]
) -> None:
    gateway.publish({"mnist": one(backends["blue"].url)})
    host, port = urllib.parse.urlsplit(gateway.url).hostname, urllib.parse.urlsplit(gateway.url).port
    with socket.create_connection((host, port), timeout=5) as raw:
        raw.sendall(b"POST /endpoints/mnist/score HTTP/1.1\r\nhost: x\r\ncontent-length: 1000000000000\r\n\r\n")
        received = b""
        while chunk := raw.recv(65536):  # the gateway closes without waiting for the body
            received += chunk
    assert received.startswith(b"HTTP/1.1 413 ")
    assert b"\r\nconnection: close\r\n" in received
    # With expect: 100-continue the body is not coming: refused and closed at once, no 100 Continue first.
    with socket.create_connection((host, port), timeout=5) as raw:
        raw.sendall(
            b"POST /endpoints/mnist/score HTTP/1.1\r\nhost: x\r\ncontent-length: %d\r\nexpect: 100-continue\r\n\r\n"
            % (MAX_BODY + 1)
        )
        received = b""
        while chunk := raw.recv(65536):
            received += chunk
    assert received.startswith(b"HTTP/1.1 413 ")


def rss_bytes(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
    assert match
    return int(match.group(1)) * 1024


def test_a_flood_of_oversized_bodies_costs_no_memory(
    gateway: Gateway, client: httpx.Client, backends: dict[str, Backend]
) -> None:
    """Refused bodies are dropped as they arrive, never gathered: 40 bodies of 8x the limit, 4 at a time."""
    gateway.publish({"mnist": one(backends["blue"].url)})
    http_client_post(gateway.url, "/endpoints/mnist/score", b"x" * (MAX_BODY + 1))  # the allocator warmed up
    before = rss_bytes(gateway.process.pid)  # one worker: the gateway process serves

    def send(i: int) -> int:
        size = 8 * MAX_BODY + i
        return http_client_post(gateway.url, "/endpoints/mnist/score", chunks_of(size) if i % 2 else b"x" * size)[0]

    with ThreadPoolExecutor(4) as pool:
        assert list(pool.map(send, range(40))) == [413] * 40
    assert rss_bytes(gateway.process.pid) - before < 2 * MAX_BODY
    assert client.post("/endpoints/mnist/score", content=b"{}").status_code == 200
    assert [body for _, _, body in backends["blue"].received] == [b"{}"]


# --- traffic ---------------------------------------------------------------------------------------------


def test_weighted_split_and_round_robin(gateway: Gateway, client: httpx.Client, backends: dict[str, Backend]) -> None:
    blue, green, blue2 = backends["blue"], backends["green"], backends["blue2"]
    deployments = {
        "blue": {"weight": 90, "targets": [blue.url, blue2.url]},
        "green": {"weight": 10, "targets": [green.url]},
    }
    gateway.publish({"mnist": {"auth": "none", "deployments": deployments}})
    seen = Counter(client.post("/endpoints/mnist/score").json()["backend"] for _ in range(2000))
    assert seen["green"] / 2000 == pytest.approx(0.10, abs=0.03)  # the binomial's sd is 0.0067
    assert abs(seen["blue"] - seen["blue2"]) <= 1  # one gateway worker: strict turns
    selected = {client.post("/endpoints/mnist/score", headers={"azureml-model-deployment": "green"}).json()["backend"]}
    assert selected == {"green"}


def test_keys_rotate_while_requests_flow(gateway: Gateway, backends: dict[str, Backend]) -> None:
    url = backends["blue"].url
    table = {"auth": "key", "deployments": {"blue": {"weight": 100, "targets": [url]}}}
    gateway.publish({"mnist": {**table, "keys": [KEY_A, KEY_B]}})
    failures: list[int] = []
    done = threading.Event()
    count = 0

    def load() -> None:
        nonlocal count
        with httpx.Client(base_url=gateway.url, timeout=30) as c:
            while not done.is_set():
                status = c.post("/endpoints/mnist/score", headers={"Authorization": f"Bearer {KEY_B}"}).status_code
                count += 1
                if status != 200:
                    failures.append(status)

    worker = threading.Thread(target=load)
    worker.start()
    try:
        for i in range(20):  # the primary is regenerated again and again; the secondary stays valid
            write_routes(
                routes_path(gateway.home),
                {"version": 1, "endpoints": {"mnist": {**table, "keys": [f"{KEY_C}{i}", KEY_B]}}},
            )
            time.sleep(0.03)
    finally:
        time.sleep(0.2)
        done.set()
        worker.join()
    assert failures == []
    assert count > 20
    with httpx.Client(base_url=gateway.url) as c:
        assert c.post("/endpoints/mnist/score", headers={"Authorization": f"Bearer {KEY_A}"}).status_code == 401
        assert c.post("/endpoints/mnist/score", headers={"Authorization": f"Bearer {KEY_C}19"}).status_code == 200


def test_the_mirror_gets_copies_and_its_fate_never_reaches_callers(
    gateway: Gateway, client: httpx.Client, backends: dict[str, Backend]
) -> None:
    live, mirror = backends["blue"], backends["green"]
    deployments = {"blue": {"weight": 100, "targets": [live.url]}, "green": {"weight": 0, "targets": [mirror.url]}}
    gateway.publish({"mnist": {"auth": "none", "deployments": deployments, "mirror": "green", "mirror_percent": 100}})
    for i in range(10):
        assert client.post("/endpoints/mnist/score", content=b"%d" % i).json()["backend"] == "blue"
    deadline = time.monotonic() + 5
    while len(mirror.received) < 10 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert sorted(body for _, _, body in mirror.received) == [b"%d" % i for i in range(10)]

    slow, down = Backend("slow", delay=TIMEOUT_S + 1), Backend("down")
    down.close()
    try:
        for mirrored in (slow, down):
            deployments["green"]["targets"] = [mirrored.url]
            gateway.publish(
                {"mnist": {"auth": "none", "deployments": deployments, "mirror": "green", "mirror_percent": 100}}
            )
            begin = time.monotonic()
            for _ in range(20):
                assert client.post("/endpoints/mnist/score").status_code == 200
            assert time.monotonic() - begin < TIMEOUT_S  # never waits for the copy
    finally:
        slow.close()


def test_keys_never_reach_the_log(gateway: Gateway, client: httpx.Client) -> None:
    closed = Backend("gone")
    closed.close()
    gateway.publish({"mnist": one(closed.url, auth="key")})
    client.post("/endpoints/mnist/score", headers={"Authorization": f"Bearer {KEY_A}"})  # 502: logged
    client.post("/endpoints/mnist/score", headers={"Authorization": f"Bearer {KEY_C}"})  # 401
    time.sleep(0.2)
    log = "\n".join(gateway.lines)
    assert "cannot connect" in log
    for key in (KEY_A, KEY_B, KEY_C):
        assert key not in log
        assert key[:10] not in log


def test_a_trace_runs_from_the_caller_through_the_gateway_to_the_deployment(
    gateway: Gateway, client: httpx.Client
) -> None:
    trace, caller_span = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    with served("request_headers.py") as deployment:
        gateway.publish({"mnist": one(deployment.url)})
        reply = client.post(
            "/endpoints/mnist/score", json={"data": 1}, headers={"traceparent": f"00-{trace}-{caller_span}-01"}
        )
        assert reply.status_code == 200, reply.text
        version, seen_trace, gateway_span, flags = reply.json()["headers"]["Traceparent"].split("-")
        assert (version, seen_trace, flags) == ("00", trace, "01")
        assert gateway_span != caller_span  # the gateway's own span is the deployment's parent
        _, answered_trace, server_span, _ = reply.headers["traceresponse"].split("-")
        assert answered_trace == trace
        assert server_span not in (caller_span, gateway_span)
        # Without one, the gateway starts the trace.
        started = client.post("/endpoints/mnist/score", json={"data": 1}).json()["headers"]["Traceparent"]
        assert re.fullmatch(r"00-[0-9a-f]{32}-[0-9a-f]{16}-01", started)


def _gateway_counts(client: httpx.Client) -> dict[tuple[str, str, str], float]:
    from prometheus_client.parser import text_string_to_metric_families

    reply = client.get("/metrics")
    assert reply.status_code == 200
    return {
        (sample.labels["endpoint"], sample.labels["deployment"], sample.labels["status"]): sample.value
        for family in text_string_to_metric_families(reply.text)
        if family.name == "scorehost_gateway_requests"
        for sample in family.samples
        if sample.name == "scorehost_gateway_requests_total"
    }


@pytest.mark.parametrize("workers", ["1", "2"])
def test_gateway_metrics_count_per_endpoint_and_deployment(
    tmp_path: Path, backends: dict[str, Backend], workers: str
) -> None:
    gateway = Gateway(tmp_path, "--workers", workers)
    try:
        gateway.publish({"mnist": one(backends["blue"].url, auth="key")})
        with httpx.Client(base_url=gateway.url, timeout=30) as client:
            for _ in range(12):  # a new connection each time: with 2 workers, both answer some
                with httpx.Client(base_url=gateway.url, timeout=30) as fresh:
                    ok = fresh.post(
                        "/endpoints/mnist/score", json={"data": 1}, headers={"Authorization": f"Bearer {KEY_A}"}
                    )
                    assert ok.status_code == 200
            assert client.post("/endpoints/mnist/score", json={"data": 1}).status_code == 401
            assert client.get("/endpoints/nope/score").status_code == 404
            counts = _gateway_counts(client)
        assert counts[("mnist", "blue", "200")] == 12
        assert counts[("", "", "401")] == 1  # refusals count under no endpoint: callers cannot grow the series
        assert counts[("", "", "404")] == 1
    finally:
        gateway.stop()


# --- spans (scorehost[otel]) ------------------------------------------------------------------------------

TRACE, CALLER_SPAN = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"


def _the_span(collector: Collector, service: str, name: str) -> Any:
    deadline = time.monotonic() + 20
    while not (found := [span for span in collector.by_service.get(service, []) if span.name == name]):
        assert time.monotonic() < deadline, f"no span {name!r} from {service!r}: {collector.spans}"
        time.sleep(0.05)
    assert len(found) == 1, found
    return found[0]


def test_the_gateways_span_is_the_parent_of_the_deployments(tmp_path: Path, collector: Collector) -> None:
    from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

    gateway = Gateway(tmp_path, "--otlp-endpoint", collector.url)
    try:
        with served("request_headers.py", "--otlp-endpoint", collector.url) as deployment:
            gateway.publish({"mnist": one(deployment.url)})
            headers = {"traceparent": f"00-{TRACE}-{CALLER_SPAN}-01", "x-request-id": "r-span"}
            reply = httpx.post(gateway.url + "/endpoints/mnist/score", json={"data": 1}, headers=headers, timeout=30)
            assert reply.status_code == 200, reply.text
            forwarded_parent = reply.json()["headers"]["Traceparent"].split("-")[2]
            server_span = reply.headers["traceresponse"].split("-")[2]
            ours = _the_span(collector, "scorehost-gateway", "POST /endpoints/{endpoint}/score")
            theirs = _the_span(collector, "ML service", "POST /score")
    finally:
        gateway.stop()
    assert ours.kind == Span.SPAN_KIND_SERVER
    assert ours.trace_id.hex() == theirs.trace_id.hex() == TRACE  # one trace, the caller's
    assert ours.parent_span_id.hex() == CALLER_SPAN
    assert ours.span_id.hex() == forwarded_parent == theirs.parent_span_id.hex()
    assert theirs.span_id.hex() == server_span
    assert ours.start_time_unix_nano <= theirs.start_time_unix_nano <= theirs.end_time_unix_nano
    assert theirs.end_time_unix_nano <= ours.end_time_unix_nano
    assert attributes_of(ours) == {
        "http.request.method": "POST",
        "http.route": "/endpoints/{endpoint}/score",
        "http.response.status_code": 200,
        "scorehost.endpoint": "mnist",
        "scorehost.deployment": "blue",
        "scorehost.request_id": "r-span",
    }
    assert ours.status.code == Status.STATUS_CODE_UNSET
    assert collector.services == {"scorehost-gateway", "ML service"}


def test_failed_forwards_are_spans_and_refusals_are_not(
    tmp_path: Path, collector: Collector, monkeypatch: pytest.MonkeyPatch
) -> None:
    from opentelemetry.proto.trace.v1.trace_pb2 import Status

    blue, closed = Backend("blue"), Backend("gone")
    closed.close()
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", collector.url)  # what the flag's default reads
    gateway = Gateway(tmp_path)
    try:
        gateway.publish({"mnist": one(blue.url, auth="key"), "down": one(closed.url)})
        with httpx.Client(base_url=gateway.url, timeout=30) as client:
            key = {"Authorization": f"Bearer {KEY_A}"}
            assert client.get("/endpoints/mnist/docs/app.js", headers=key).status_code == 200
            assert client.post("/endpoints/down/score").status_code == 502
            assert client.post("/endpoints/mnist/score").status_code == 401  # the gateway's own answers: no span
            assert client.post("/endpoints/nope/score").status_code == 404
    finally:
        gateway.stop()  # sends the spans still pending on its way out
        blue.close()
    spans = {span.name: span for span in collector.spans}
    assert set(spans) == {"GET /endpoints/{endpoint}/docs/{path}", "POST /endpoints/{endpoint}/score"}
    failed = spans["POST /endpoints/{endpoint}/score"]
    assert failed.parent_span_id == b""  # no traceparent came: the gateway started the trace
    assert attributes_of(failed)["http.response.status_code"] == 502
    assert (attributes_of(failed)["scorehost.endpoint"], attributes_of(failed)["scorehost.deployment"]) == (
        "down",
        "blue",
    )
    assert failed.status.code == Status.STATUS_CODE_ERROR
    assert spans["GET /endpoints/{endpoint}/docs/{path}"].status.code == Status.STATUS_CODE_UNSET


def test_without_an_endpoint_the_gateway_exports_nothing(tmp_path: Path, collector: Collector) -> None:
    blue = Backend("blue")
    gateway = Gateway(tmp_path)
    try:
        gateway.publish({"mnist": one(blue.url)})
        assert httpx.post(gateway.url + "/endpoints/mnist/score", json={"data": 1}, timeout=30).status_code == 200
    finally:
        gateway.stop()  # would send any span still pending
        blue.close()
    assert collector.spans == []
    shown = CliRunner().invoke(cli, ["gateway", "--help"]).output
    assert "--otlp-endpoint URL" in shown
    assert "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT" in shown
    assert "scorehost[otel]" in shown
    assert "--otlp-endpoint URL" in CliRunner().invoke(cli, ["controlplane", "start", "--help"]).output


def test_without_opentelemetry_the_gateway_names_the_extra(tmp_path: Path) -> None:
    hide = "import sys; sys.modules['opentelemetry.sdk.trace'] = None; from scorehost.cli import main; main()"
    command = [sys.executable, "-c", hide, "gateway", "--home", str(tmp_path), "--port", "0"]
    done = subprocess.run([*command, "--otlp-endpoint", "http://127.0.0.1:9/v1/traces"], capture_output=True, text=True)
    assert done.returncode == 1
    assert "pip install 'scorehost[otel]'" in done.stderr
