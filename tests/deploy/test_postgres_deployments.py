"""Deployments of a workspace whose database is PostgreSQL: they serve its models with no extra flag, and the
database's password appears nowhere but where the user put it (SCOREHOST_REGISTRY_URL).

One control plane per test, the real CLI, real `scorehost serve` processes: a model registered in PostgreSQL is
served; the serve process, restarted after a crash and restarted by a later control plane that adopted it, reaches
the database each time; then the password is looked for in every file of the workspace, in every table of the
database, in `deployments show --json` and the API's answers, and in the environment of the serve process, of its
workers and of the script.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from _control_plane import free_port
from _postgres import PostgresServer

from scorehost.client import Client, ControlPlaneAddress
from scorehost.deploy.controlplane.daemon import stop_control_plane
from scorehost.url_handoff import URL_FD_VARIABLE

SCRIPTS = Path(__file__).parents[1] / "scripts"

pytestmark = pytest.mark.timeout(240)


def _cli(env: dict[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-m", "scorehost", *args], env=env, capture_output=True, text=True, timeout=180, check=False
    )
    assert not check or done.returncode == 0, done.stdout + done.stderr
    return done


def _serve_pid(home: Path) -> int:
    """The generation's serve process (0 between a crash and its restart)."""
    try:
        return int(json.loads((home / "deployments" / "pgep" / "blue" / "1" / "process.json").read_text())["pid"] or 0)
    except (OSError, ValueError, KeyError):
        return 0


def _children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat[stat.rfind(")") + 2 :].split()[1]) == pid:
                found.append(int(entry))
    return found


def _score(client: Client) -> dict[str, object]:
    key = client.keys("pgep")["primary"]
    deadline = time.monotonic() + 60
    while True:
        try:
            answer = client.invoke("pgep", 1, key=key)
            if isinstance(answer, dict) and answer.get("model"):
                return answer
        except Exception:  # noqa: BLE001 - restarting: the gateway answers 502/503 meanwhile
            if time.monotonic() > deadline:
                raise
        time.sleep(0.1)


def _restarted(home: Path, old_pid: int, timeout: float = 60) -> int:
    deadline = time.monotonic() + timeout
    while True:
        pid = _serve_pid(home)
        if pid not in (0, old_pid):
            return pid
        assert time.monotonic() < deadline, "the serve process was not restarted"
        time.sleep(0.1)


def _kill_control_plane(home: Path) -> None:
    pid = int(json.loads((home / "controlplane" / "address.json").read_text())["pid"])
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while Path(f"/proc/{pid}").exists() and Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    (home / "controlplane" / "address.json").unlink(missing_ok=True)


def _database_text(url: str) -> str:
    import psycopg

    with psycopg.connect(url.replace("+psycopg", "")) as conn:
        tables = [row[0] for row in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")]
        assert "deployments" in tables or any("deploy" in table for table in tables), tables
        return "\n".join(str(row[0]) for table in tables for row in conn.execute(f'SELECT t::text FROM "{table}" t'))


def test_a_deployment_serves_a_model_registered_in_postgresql_and_the_password_stays_put(
    postgres: PostgresServer, tmp_path: Path
) -> None:
    url = postgres.database("deploy")
    password = postgres.password
    home = tmp_path / "home"
    env = {**os.environ, "SCOREHOST_HOME": str(home), "SCOREHOST_REGISTRY_URL": url}
    (tmp_path / "marker.txt").write_text("model 1 from postgres\n")
    _cli(env, "models", "register", "marker", str(tmp_path / "marker.txt"))
    gateway_port = free_port()
    try:
        _cli(env, "controlplane", "start", "--api-port", "0", "--gateway-port", str(gateway_port))
        _cli(env, "endpoints", "create", "pgep")
        script = str(SCRIPTS / "model_and_environ.py")
        created = _cli(env, "deployments", "create", "pgep", "blue", "--script", script, "--model", "marker:1")
        assert "ready" in created.stdout, created.stdout + created.stderr
        with Client(address=ControlPlaneAddress.of(home), timeout=30) as client:
            answer = _score(client)
            assert answer["model"] == "model 1 from postgres"
            environ = answer["environ"]
            assert isinstance(environ, dict)
            assert not [name for name in environ if name.startswith("SCOREHOST_REGISTRY_URL")], sorted(environ)
            assert password not in json.dumps(environ)

            # A crash: the backend starts it again, handing the URL over again.
            first = _serve_pid(home)
            os.kill(first, signal.SIGKILL)
            second = _restarted(home, first)
            assert _score(client)["model"] == "model 1 from postgres"

        # The control plane crashes; the next one adopts the running deployment, and restarts it after a crash.
        _kill_control_plane(home)
        _cli(env, "controlplane", "start", "--api-port", "0", "--gateway-port", str(gateway_port))
        address = ControlPlaneAddress.of(home)
        assert _serve_pid(home) == second  # adopted, not restarted
        os.kill(second, signal.SIGKILL)
        third = _restarted(home, second)
        with Client(address=address, timeout=30) as client:
            assert _score(client)["model"] == "model 1 from postgres"
        assert _children(third), "its worker"

        # Where the password must not be: the serve process's and its workers' environment (as started) ...
        for pid in (third, *_children(third)):
            started_with = Path(f"/proc/{pid}/environ").read_bytes()
            assert password.encode() not in started_with
            assert b"SCOREHOST_REGISTRY_URL=" not in started_with
        assert f"{URL_FD_VARIABLE}=".encode() in Path(f"/proc/{third}/environ").read_bytes()  # only the fd's number
        # ... what the CLI and the API answer about the deployment ...
        shown = _cli(env, "deployments", "show", "pgep", "blue", "--json").stdout
        assert '"marker:1"' in shown
        status = _cli(env, "controlplane", "status", "--json").stdout
        api = httpx.get(
            f"{address.api}/api/v1/endpoints/pgep/deployments/blue",
            headers={"Authorization": f"Bearer {address.token}"},
        ).text
        for text in (shown, status, api):
            assert password not in text
        # ... every file of the workspace (launch.json, process.json, logs, routes) and every table of the database.
        files = [path for path in home.rglob("*") if path.is_file()]
        assert any(path.name == "launch.json" for path in files)
        assert any(path.name == "controlplane.log" for path in files)
        leaked = [str(path) for path in files if password.encode() in path.read_bytes()]
        assert leaked == []
        assert password not in _database_text(url)
    finally:
        stop_control_plane(home)
