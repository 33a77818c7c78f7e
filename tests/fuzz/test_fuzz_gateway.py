"""Hostile raw requests against a real `scorehost gateway` fronting one real deployment (echo.py).

The deployment never fails what it accepts, so no answer may be a 5xx; the gateway's own answers (those the
deployment did not make) are JSON `{"error": ...}`; and the gateway lives on and still forwards.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from conftest import Server, served, wait_for_line
from hypothesis import given
from hypothesis import strategies as st

from fuzz._gateway_requests import gateway_requests
from fuzz._tally import Recorder, fuzz_settings
from fuzz._wire import Answer, exchange
from scorehost.deploy.gateway import routes_path, write_routes

ENDPOINT = "fuzzed"
KEYS = ["key-a-" + "a" * 37, "key-b-" + "b" * 37]
MAX_BODY = 64 * 1024  # small, so that declared lengths past it are refused at once


class Gateway:
    """A `scorehost gateway` process on a free port, its log read as it comes."""

    def __init__(self, home: Path) -> None:
        command = [sys.executable, "-m", "scorehost", "gateway", "--home", str(home), "--port", "0"]
        command += ["--timeout", "10", "--max-body-size", str(MAX_BODY)]
        self.process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
        )
        self.lines: list[str] = []
        self.reader = threading.Thread(target=self._pump, daemon=True)
        self.reader.start()
        line = wait_for_line(self.lines, r"listening on http://\S+", 30)
        match = re.search(r"listening on (http://\S+)", line)
        assert match
        self.url = match.group(1)

    def _pump(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

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
def deployment() -> Iterator[Server]:
    with served("echo.py") as started:
        yield started


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory, deployment: Server) -> Iterator[Gateway]:
    home = tmp_path_factory.mktemp("gateway-home")
    table = {"auth": "key", "keys": KEYS, "deployments": {"blue": {"weight": 100, "targets": [deployment.url]}}}
    write_routes(routes_path(home), {"version": 1, "endpoints": {ENDPOINT: table}})
    started = Gateway(home)
    yield started
    started.stop()


def _forwards(gateway: Gateway) -> None:
    """A well-formed, keyed request reaches the deployment and comes back."""
    deadline = time.monotonic() + 10
    while True:  # the table is read shortly after start
        answer = httpx.post(
            f"{gateway.url}/endpoints/{ENDPOINT}/score",
            json={"data": [1]},
            headers={"Authorization": f"Bearer {KEYS[0]}"},
            timeout=30,
        )
        if answer.status_code != 404 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"received": "[1]"}


def _from_deployment(answer: Answer) -> bool:
    """The deployment's app marks every answer with its version; its HTTP server (granian) dates its own refusals
    of requests the gateway's parser passed. The gateway does neither."""
    return "x-ms-server-version" in answer.headers or "date" in answer.headers


def _own_error(answer: Answer) -> bool:
    """Whether an answer the gateway made itself (not the deployment's) is `{"error": "..."}`."""
    try:
        content = json.loads(answer.body)
    except ValueError:
        return False
    return isinstance(content, dict) and isinstance(content.get("error"), str)


def test_fuzzed_requests(gateway: Gateway, deployment: Server, recorder: Recorder) -> None:
    _forwards(gateway)
    port = urlsplit(gateway.url).port
    assert port is not None

    # A well-formed request pipelined behind one case in ten: the gateway answers both in order, or refuses the
    # connection at the fuzzed one.
    behind = f"POST /endpoints/{ENDPOINT}/score HTTP/1.1\r\nAuthorization: Bearer {KEYS[0]}\r\n".encode()
    behind += b'Content-Length: 11\r\nConnection: close\r\n\r\n{"data": 1}'

    @fuzz_settings(300)
    @given(sent=gateway_requests(ENDPOINT, KEYS), pipelined=st.sampled_from([False] * 9 + [True]))
    def fuzz(sent: bytes, pipelined: bool) -> None:
        recorder.case()
        if pipelined:  # kept open, so that the request behind it is read
            sent = sent.replace(b"\r\nConnection: close\r\n", b"\r\n", 1) + behind
        result = exchange(port, sent)
        if not result.answers:
            recorder.answer(None)
        log = "\n".join(gateway.lines[-20:])
        for answer in result.answers:
            recorder.answer(answer.status)
            assert answer.status < 500, f"server error:\n{result.describe()}\ngateway log:\n{log}"
            if answer.complete and answer.status >= 400 and not _from_deployment(answer):
                assert _own_error(answer), f"not a JSON error:\n{result.describe()}"

    fuzz()
    assert gateway.process.poll() is None, "\n".join(gateway.lines)
    _forwards(gateway)
