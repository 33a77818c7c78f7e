"""Shared fixtures: a clean environment, the fixture-script zoo, and real `scorehost serve` processes."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

SCRIPTS = Path(__file__).parent / "scripts"
_OUR_VARIABLES = re.compile(r"^(SCOREHOST_|AZUREML_|SERVER_PORT$|WORKER_COUNT$|WORKER_PRELOAD$|SCORING_TIMEOUT_MS$)")


@pytest.fixture(autouse=True)
def clean_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test sees another test's (or the developer's) scorehost / Azure ML variables."""
    for name in list(os.environ):
        if _OUR_VARIABLES.match(name):
            monkeypatch.delenv(name)


@pytest.fixture
def scripts() -> Path:
    """The folder of fixture entry scripts, one behaviour each."""
    return SCRIPTS


@dataclass
class Server:
    """A running `scorehost serve` process and what it has logged so far."""

    process: subprocess.Popen[str]
    url: str = ""
    lines: list[str] = field(default_factory=list)

    @property
    def log(self) -> str:
        return "\n".join(self.lines)

    def client(self, **kwargs: object) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30, **kwargs)  # type: ignore[arg-type]

    def wait_for_log(self, pattern: str, timeout: float = 20) -> str:
        """Wait until a log line matches `pattern` (a regex); return that line."""
        deadline = time.monotonic() + timeout
        compiled = re.compile(pattern)
        while time.monotonic() < deadline:
            for line in list(self.lines):
                if compiled.search(line):
                    return line
            time.sleep(0.02)
        raise AssertionError(f"no log line matched {pattern!r}; log so far:\n{self.log}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        return self.process.wait(timeout)


def start_server(args: list[str], env: dict[str, str] | None = None, cwd: Path | None = None) -> Server:
    """Start `scorehost serve ARGS` (port 0 unless given) and return at once, reading its log in a thread."""
    command = [sys.executable, "-m", "scorehost", "serve", *args]
    if "--port" not in args:
        command += ["--port", "0"]
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, **(env or {})},
        cwd=cwd,
        start_new_session=True,
    )
    server = Server(process)

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            server.lines.append(line.rstrip("\n"))

    threading.Thread(target=pump, daemon=True).start()
    return server


def wait_ready(server: Server, timeout: float = 60) -> Server:
    """Wait for the listening line and then for GET /ready to answer 200."""
    line = server.wait_for_log(r"listening on http://", timeout)
    match = re.search(r"listening on (http://\S+)", line)
    assert match
    server.url = match.group(1)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise AssertionError(f"server exited with {server.process.returncode}:\n{server.log}")
        try:
            if httpx.get(f"{server.url}/ready", timeout=5).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise AssertionError(f"server never became ready:\n{server.log}")


@pytest.fixture
def serve() -> Iterator[Callable[..., Server]]:
    """`serve("echo.py", "--workers", "2")` starts a real server on a free port and waits until ready."""
    started: list[Server] = []

    def _serve(script: str | Path, *args: str, env: dict[str, str] | None = None, ready: bool = True) -> Server:
        path = script if isinstance(script, Path) else SCRIPTS / script
        server = start_server([str(path), *args], env=env)
        started.append(server)
        return wait_ready(server) if ready else server

    yield _serve
    for server in started:
        if server.process.poll() is None:
            os.killpg(server.process.pid, signal.SIGKILL)
            server.process.wait(10)
