"""The workspace database's failures, each one line naming the database (password masked), what failed and the fix.

Real failures: a wrong password, a closed port, a database that does not exist and a user without rights on a real
PostgreSQL server (tests/_postgres.py); the `postgres://` scheme, drivers that are not installed and a malformed URL.
Each goes through the real CLI in a subprocess; the control plane's API is called in-process over a real database.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa
from _control_plane import TOKEN, RecordingDeployer, free_port
from _postgres import PostgresServer
from werkzeug.test import Client as WsgiClient

from scorehost.deploy.controlplane.api import ControlPlaneApp
from scorehost.deploy.state import DeployState
from scorehost.errors import WorkspaceDatabaseError
from scorehost.registry import database
from scorehost.registry.database_errors import masked, password_forms

Case = Callable[[PostgresServer], tuple[str, str]]  # (URL, a fix the message must name)


def _wrong_password(server: PostgresServer) -> tuple[str, str]:
    url = server.database().replace(server.password, "wrong-" + secrets.token_hex(6))
    return url, "check the user and password in SCOREHOST_REGISTRY_URL"


def _closed_port(server: PostgresServer) -> tuple[str, str]:
    port = free_port()
    return server.url("postgres").replace(f":{server.port}/", f":{port}/"), f"server running at 127.0.0.1:{port}?"


def _no_database(server: PostgresServer) -> tuple[str, str]:
    return server.url("no_such_database"), "create it (createdb -h 127.0.0.1"


def _postgres_scheme(server: PostgresServer) -> tuple[str, str]:
    return server.database().replace("postgresql+psycopg://", "postgres://"), "write postgresql+psycopg://"


def _pg8000_missing(server: PostgresServer) -> tuple[str, str]:
    return server.database().replace("+psycopg", "+pg8000"), "pip install 'scorehost[postgres]'"


def _psycopg2_missing(server: PostgresServer) -> tuple[str, str]:
    return server.database().replace("+psycopg", "+psycopg2"), "pip install psycopg2-binary"


def _no_privileges(server: PostgresServer) -> tuple[str, str]:
    """A user who may connect but not create the tables (PostgreSQL 15: no CREATE on schema public)."""
    url = server.database()
    user, password = f"limited_{secrets.token_hex(4)}", secrets.token_urlsafe(12)
    with psycopg.connect(server.url().replace("+psycopg", ""), autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {user} LOGIN PASSWORD '{password}'")
    return url.replace(f"scorehost:{server.password}@", f"{user}:{password}@"), "GRANT CREATE ON SCHEMA public TO"


def _malformed(server: PostgresServer) -> tuple[str, str]:
    return f"postgresql+psycopg//scorehost:{server.password}@127.0.0.1", "not a database URL SQLAlchemy can read"


CASES = [
    _wrong_password,
    _closed_port,
    _no_database,
    _postgres_scheme,
    _pg8000_missing,
    _psycopg2_missing,
    _no_privileges,
    _malformed,
]


def _scorehost(home: Path, url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SCOREHOST_HOME": str(home), "SCOREHOST_REGISTRY_URL": url}
    return subprocess.run(
        [sys.executable, "-m", "scorehost", *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )


def _passwords(server: PostgresServer, url: str) -> list[str]:
    return [server.password, *password_forms(url)]


@pytest.mark.parametrize("case", CASES, ids=[case.__name__.strip("_") for case in CASES])
def test_models_list_says_what_failed_in_one_line(case: Case, postgres: PostgresServer, tmp_path: Path) -> None:
    url, fix = case(postgres)
    done = _scorehost(tmp_path / "home", url, "models", "list")
    assert done.returncode == 1, done.stderr
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"Error: cannot use the workspace database {masked(url)}: ")
    assert fix in lines[0]
    for password in _passwords(postgres, url):
        assert password not in done.stderr
    assert ":***@" in lines[0]


def test_every_command_that_opens_the_database_says_it_in_one_line(postgres: PostgresServer, tmp_path: Path) -> None:
    url, fix = _wrong_password(postgres)
    home = tmp_path / "home"
    home.mkdir(mode=0o700)  # serve --model refuses a workspace folder that is not there before it opens anything
    script = Path(__file__).parents[1] / "scripts" / "echo.py"
    commands = {
        ("environments", "list"): 1,
        ("serve", str(script), "--model", "m:1", "--port", "0"): 3,
        ("controlplane", "start", "--api-port", "0", "--gateway-port", str(free_port())): 1,
    }
    for command, code in commands.items():
        done = _scorehost(home, url, *command)
        assert done.returncode == code, (command, done.stderr)
        lines = [line for line in done.stderr.splitlines() if "readable or writable by other users" not in line]
        assert len(lines) == 1, (command, done.stderr)
        assert masked(url) in lines[0], (command, lines[0])
        assert fix in lines[0], (command, lines[0])
        assert "Traceback" not in done.stderr
        for password in _passwords(postgres, url):
            assert password not in done.stdout + done.stderr
    for path in home.rglob("*"):  # the control plane's log says it too, masked
        if path.is_file():
            for password in _passwords(postgres, url):
                assert password.encode() not in path.read_bytes(), path


def test_the_api_answers_a_lost_database_as_a_json_error_without_the_password(
    postgres: PostgresServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The control plane runs; then its user's password changes and its connections drop: every request that
    needs the database is a 503 naming the fix, and the control plane serves on."""
    user, password = f"owner_{secrets.token_hex(4)}", secrets.token_urlsafe(12)
    admin = postgres.url().replace("+psycopg", "")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {user} LOGIN PASSWORD '{password}'")
        conn.execute(f"CREATE DATABASE {user} OWNER {user}")
    url = postgres.url(user).replace(f"scorehost:{postgres.password}@", f"{user}:{password}@")
    monkeypatch.setenv("SCOREHOST_REGISTRY_URL", url)  # the registry's routes open it from the settings
    engine = database.connect(url)
    try:
        app = ControlPlaneApp(
            DeployState(engine), RecordingDeployer(tmp_path), TOKEN, "http://127.0.0.1:1", home=tmp_path
        )
        client = WsgiClient(app)
        headers = {"Authorization": f"Bearer {TOKEN}"}
        assert client.get("/api/v1/endpoints", headers=headers).status_code == 200
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f"ALTER ROLE {user} PASSWORD 'changed-{secrets.token_hex(4)}'")
            conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s", (user,))
        for path in ("/api/v1/endpoints", "/api/v1/models"):
            answer = client.get(path, headers=headers)
            assert answer.status_code == 503, answer.text
            error = json.loads(answer.text)["error"]
            assert error.startswith(f"cannot use the workspace database {masked(url)}: authentication failed"), error
            assert password not in answer.text
            assert postgres.password not in answer.text
    finally:
        engine.dispose()


# -- in-process: the URL forms and the SQLite side ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql+psycopg://u:s3cret@h:5432/d", "postgresql+psycopg://u:***@h:5432/d"),
        ("postgresql+psycopg//u:s3cret@h/d", "postgresql+psycopg//u:***@h/d"),  # SQLAlchemy cannot parse it
        ("postgresql+psycopg://u:s3cr@t@h/d", "postgresql+psycopg://u:***@***@h/d"),  # an @ not written %40
        ("postgresql+psycopg://u@h/d?password=s3cret&sslmode=on", "postgresql+psycopg://u@h/d?password=***&sslmode=on"),
    ],
)
def test_masked_hides_the_password_even_of_a_url_sqlalchemy_refuses(url: str, shown: str) -> None:
    assert masked(url) == shown


def test_password_forms_include_the_percent_encoded_one() -> None:
    assert set(password_forms("postgresql+psycopg://u:a%2Fb%40c@h/d")) >= {"a/b@c", "a%2Fb%40c"}
    assert "s3cr@t" in password_forms("postgresql+psycopg://u:s3cr@t@h/d")
    assert password_forms("sqlite:////tmp/x.db") == []


@pytest.mark.parametrize("driver", ["psycopg_async", "asyncpg"])  # installed, and not
def test_an_asyncio_driver_is_refused_with_the_blocking_one_to_write(driver: str) -> None:
    with pytest.raises(WorkspaceDatabaseError, match=r"asyncio driver.*write postgresql\+psycopg://"):
        database.connect(f"postgresql+{driver}://u:p@127.0.0.1:1/d")


def test_a_sqlite_file_in_a_missing_folder_and_a_file_that_is_no_database(tmp_path: Path) -> None:
    with pytest.raises(WorkspaceDatabaseError, match=r"SQLite cannot open .*/missing/registry.db"):
        database.migrate(database.connect(f"sqlite:///{tmp_path / 'missing' / 'registry.db'}"))
    (tmp_path / "not.db").write_bytes(b"this is not a database, just text" * 100)
    engine = database.connect(f"sqlite:///{tmp_path / 'not.db'}")
    with pytest.raises(WorkspaceDatabaseError, match="not a SQLite database"):
        database.migrate(engine)
    engine.dispose()


def test_errors_of_a_statement_are_left_to_the_code_that_runs_it(tmp_path: Path) -> None:
    engine = database.connect(f"sqlite:///{tmp_path / 'registry.db'}")
    with pytest.raises(sa.exc.OperationalError, match="no such table"), engine.connect() as conn:
        conn.exec_driver_sql("SELECT * FROM nothing_here")
    engine.dispose()
