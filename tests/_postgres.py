"""A private PostgreSQL server for the tests: Debian's `postgresql` binaries, a cluster in a temporary folder, run
by an unprivileged user (`postgres` when the tests run as root, else the tests' own user) on a free loopback port,
password authentication on. `.ci/run` installs the package; where the binaries are missing or the cluster cannot
start, the tests that need it skip, saying why.

`PostgresServer.database()` makes a fresh database for one test; the URL carries the password, as a user's
`SCOREHOST_REGISTRY_URL` would.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

__all__ = ["PostgresServer", "PostgresUnavailable", "find_binaries", "running_postgres"]

USER = "scorehost"


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL here: the reason, for a skip."""


@dataclass
class PostgresServer:
    host: str
    port: int
    password: str
    folder: Path
    counter: int = 0

    def url(self, database: str = "postgres", driver: str = "postgresql+psycopg") -> str:
        return f"{driver}://{USER}:{self.password}@{self.host}:{self.port}/{database}"

    def database(self, prefix: str = "t") -> str:
        """A new, empty database; its URL."""
        import psycopg

        self.counter += 1
        name = f"{prefix}_{os.getpid()}_{self.counter}_{secrets.token_hex(3)}"
        with psycopg.connect(self.url().replace("+psycopg", ""), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)


def find_binaries() -> Path:
    """The folder of `initdb` and `pg_ctl` (Debian keeps them out of PATH), or PostgresUnavailable."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[4]))
    if found:
        return Path(found[-1]).parent
    on_path = shutil.which("initdb")
    if on_path:
        return Path(on_path).parent
    raise PostgresUnavailable("PostgreSQL is not installed (Debian: apt-get install postgresql)")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _as_owner(command: list[str], owner: pwd.struct_passwd | None) -> list[str]:
    if owner is None:
        return command
    return ["setpriv", f"--reuid={owner.pw_uid}", f"--regid={owner.pw_gid}", "--clear-groups", "--", *command]


@contextlib.contextmanager
def running_postgres() -> Iterator[PostgresServer]:
    """A started cluster, stopped and removed on the way out; PostgresUnavailable when it cannot be."""
    try:
        import psycopg  # noqa: F401
    except ImportError as error:
        raise PostgresUnavailable("the PostgreSQL driver is missing: pip install 'scorehost[postgres]'") from error
    binaries = find_binaries()
    owner = None
    if os.geteuid() == 0:
        try:
            owner = pwd.getpwnam("postgres")  # initdb refuses to run as root
        except KeyError as error:
            raise PostgresUnavailable("running as root and there is no 'postgres' user to run PostgreSQL") from error
    folder = Path(tempfile.mkdtemp(prefix="scorehost-pg-"))
    password = secrets.token_urlsafe(16)
    try:
        (folder / "pw").write_text(password)
        if owner is not None:
            for path in (folder, folder / "pw"):
                os.chown(path, owner.pw_uid, owner.pw_gid)
        data = folder / "data"
        initdb = [str(binaries / "initdb"), "-D", str(data), "-U", USER, f"--pwfile={folder / 'pw'}"]
        initdb += ["--auth=scram-sha-256", "--encoding=UTF8", "--no-instructions"]
        done = subprocess.run(_as_owner(initdb, owner), capture_output=True, text=True, timeout=120, check=False)
        if done.returncode != 0:
            raise PostgresUnavailable(f"initdb failed: {done.stderr.strip()[-400:]}")
        port = _free_port()
        options = f"-c listen_addresses=127.0.0.1 -p {port} -k {folder} -c fsync=off -c max_connections=200"
        start = [str(binaries / "pg_ctl"), "-D", str(data), "-l", str(folder / "log"), "-o", options, "-w", "start"]
        done = subprocess.run(_as_owner(start, owner), capture_output=True, text=True, timeout=120, check=False)
        if done.returncode != 0:
            log = (folder / "log").read_text(errors="replace")[-400:] if (folder / "log").exists() else ""
            raise PostgresUnavailable(f"PostgreSQL did not start: {done.stderr.strip()[-300:]} {log}")
        try:
            yield PostgresServer("127.0.0.1", port, password, folder)
        finally:
            stop = [str(binaries / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"]
            subprocess.run(_as_owner(stop, owner), capture_output=True, timeout=60, check=False)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
