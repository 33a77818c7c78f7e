"""Shared fixtures: a clean environment, the fixture-script zoo, and real `scorehost serve` processes."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from _otlp_receiver import collector
from _postgres import PostgresServer, PostgresUnavailable, running_postgres
from _ray_cluster import ray_cluster

from scorehost.compat import reset_raw_http_requested, uninstall_import_aliases

SCRIPTS = Path(__file__).parent / "scripts"
__all__ = ["SCRIPTS", "Server", "collector", "kill", "ray_cluster", "served", "start_server", "wait_ready"]
# OTEL_EXPORTER_OTLP_*: a developer's collector would turn spans on in every server and gateway under test.
_OUR_VARIABLES = re.compile(
    r"^(SCOREHOST_|AZUREML_|OTEL_EXPORTER_OTLP_|SERVER_PORT$|WORKER_COUNT$|WORKER_PRELOAD$|SCORING_TIMEOUT_MS$)"
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Everything under tests/ray needs a Ray cluster: marked `ray`, so a plain `pytest` leaves it out."""
    ray_tests = Path(__file__).parent / "ray"
    for item in items:
        if ray_tests in Path(item.path).parents:
            item.add_marker(pytest.mark.ray)


@pytest.fixture(autouse=True)
def _clean_compat_state() -> Iterator[None]:
    """Each test leaves the process as it found it: no `@rawhttp` flag, no azureml.* import aliases."""
    yield
    reset_raw_http_requested()
    uninstall_import_aliases()


@pytest.fixture(autouse=True)
def clean_environ(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """No test sees another test's (or the developer's) scorehost / Azure ML / OTLP exporter variables.

    SCOREHOST_HOME points at a fresh folder, so no test reads or writes the developer's ~/.scorehost.
    """
    for name in list(os.environ):
        if _OUR_VARIABLES.match(name):
            monkeypatch.delenv(name)
    monkeypatch.setenv("SCOREHOST_HOME", str(tmp_path_factory.mktemp("scorehost-home")))


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
    reader: threading.Thread | None = None

    @property
    def log(self) -> str:
        return "\n".join(self.lines)

    def client(self, **kwargs: Any) -> httpx.Client:
        """A client for the server: on its TCP port, or on its Unix socket (`--uds`)."""
        kwargs.setdefault("timeout", 30)
        if self.url.startswith("unix:"):
            path = self.url.removeprefix("unix:")
            transport = httpx.HTTPTransport(uds="\0" + path[1:] if path.startswith("@") else path)
            return httpx.Client(base_url="http://localhost", transport=transport, **kwargs)
        return httpx.Client(base_url=self.url, **kwargs)

    def wait_for_log(self, pattern: str, timeout: float = 20) -> str:
        """Wait until a log line matches `pattern` (a regex); return that line."""
        return wait_for_line(self.lines, pattern, timeout)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        return self.wait_exit(timeout)

    def wait_exit(self, timeout: float = 30) -> int:
        """Wait for the server to exit and for its last log lines to be read; return the exit code."""
        code = self.process.wait(timeout)
        if self.reader is not None:
            self.reader.join(timeout)
        return code


def wait_for_line(lines: list[str], pattern: str, timeout: float) -> str:
    """Wait until one of `lines` (a list another thread appends a process's output to) matches `pattern`."""
    deadline = time.monotonic() + timeout
    compiled = re.compile(pattern)
    while time.monotonic() < deadline:
        for line in list(lines):
            if compiled.search(line):
                return line
        time.sleep(0.02)
    log = "\n".join(lines)
    raise AssertionError(f"no log line matched {pattern!r}; log so far:\n{log}")


def start_server(
    args: list[str],
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    python: Path | None = None,
    preexec_fn: Callable[[], None] | None = None,
) -> Server:
    """Start `scorehost serve ARGS` (port 0 unless given; with `python`, another environment's interpreter;
    `preexec_fn` runs in the child before it starts, to set limits) and return at once, reading its log in a
    thread."""
    command = [str(python or sys.executable), "-m", "scorehost", "serve", *args]
    if "--port" not in args and not {"SERVER_PORT", "SCOREHOST_PORT"} & set(env or {}):
        command += ["--port", "0"]
    # Only the variables the test names: module-scoped servers start before `clean_environ` runs.
    base = {name: value for name, value in os.environ.items() if not _OUR_VARIABLES.match(name)}
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**base, **(env or {})},
        cwd=cwd,
        start_new_session=True,
        preexec_fn=preexec_fn,
    )
    server = Server(process)

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            server.lines.append(line.rstrip("\n"))

    server.reader = threading.Thread(target=pump, daemon=True)
    server.reader.start()
    return server


def wait_ready(server: Server, timeout: float = 60) -> Server:
    """Wait for the listening line and then for GET /ready to answer 200."""
    line = server.wait_for_log(r"listening on (http://|unix:)", timeout)
    match = re.search(r"listening on (\S+)", line)
    assert match
    server.url = match.group(1)
    deadline = time.monotonic() + timeout
    with server.client(timeout=5) as client:
        while time.monotonic() < deadline:
            if server.process.poll() is not None:
                raise AssertionError(f"server exited with {server.process.returncode}:\n{server.log}")
            try:
                if client.get("/ready").status_code == 200:
                    return server
            except httpx.TransportError:
                pass
            time.sleep(0.05)
    raise AssertionError(f"server never became ready:\n{server.log}")


def kill(server: Server) -> None:
    """Kill whatever is left of the server's process group (supervisor and workers)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(server.process.pid, signal.SIGKILL)
    server.wait_exit(10)
    if server.process.stdout is not None:
        server.process.stdout.close()


@contextlib.contextmanager
def served(script: str | Path, *args: str, env: dict[str, str] | None = None) -> Iterator[Server]:
    """A ready server for a `with` block (or a module-scoped fixture), killed on the way out."""
    path = script if isinstance(script, Path) else SCRIPTS / script
    server = start_server([str(path), *args], env=env)
    try:
        yield wait_ready(server)
    finally:
        kill(server)


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
        kill(server)


# --- In-process host tests (tests/host, tests/http/test_app.py) ------------------------------------


@pytest.fixture
def script_sandbox(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Undo what loading an entry script does to this process: the working directory, `sys.path`,
    `entry_module`, the script folders' own modules in `sys.modules`, the azureml.* import aliases and
    the @rawhttp flag."""
    monkeypatch.chdir(os.getcwd())  # restored at teardown
    saved_path = list(sys.path)
    saved_entry = sys.modules.get("entry_module")
    yield
    added = [folder for folder in sys.path if folder not in saved_path]
    sys.path[:] = saved_path
    for name, module in list(sys.modules.items()):
        filename = getattr(module, "__file__", None) or ""
        if any(filename.startswith(folder + os.sep) for folder in added):
            del sys.modules[name]
    if saved_entry is None:
        sys.modules.pop("entry_module", None)
    else:
        sys.modules["entry_module"] = saved_entry
    reset_raw_http_requested()
    uninstall_import_aliases()


@pytest.fixture
def write_script(tmp_path: Path) -> Callable[..., Path]:
    """`write_script(source, name="score.py")` writes dedented source under tmp_path/app and returns its path."""

    def _write(source: str, name: str = "score.py") -> Path:
        path = tmp_path / "app" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source).lstrip("\n"), encoding="utf-8")
        return path

    return _write


# -- Azure ML project files (tests/azureml) ---------------------------------------------------------------------


@pytest.fixture
def online(tmp_path: Path) -> Any:
    """azureml-examples' cli/endpoints/online: managed/sample/{endpoint,blue-deployment}.yml and model-1/."""
    from _azureml_samples import make_online_samples

    return make_online_samples(tmp_path)


@pytest.fixture
def yaml_file(tmp_path: Path) -> Callable[..., Path]:
    """Write `text` (dedented) to tmp_path/`name` and return its path."""
    import textwrap

    from _azureml_samples import write_file

    def write(text: str, name: str = "file.yml") -> Path:
        return write_file(tmp_path / name, textwrap.dedent(text))

    return write


# --- PostgreSQL (tests/_postgres.py) ----------------------------------------------------------------


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A private PostgreSQL server for this test process (skipped, saying why, where none can start)."""
    try:
        with running_postgres() as server:
            yield server
    except PostgresUnavailable as error:
        pytest.skip(f"no PostgreSQL: {error}")


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty workspace database: a SQLite file, then a PostgreSQL database (the same test runs on both)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'workspace.db'}"
    server: PostgresServer = request.getfixturevalue("postgres")
    return server.database()
