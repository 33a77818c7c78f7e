"""The workspace database holds secrets: it and its -wal and -shm are 0600 whatever the folder's mode."""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from scorehost import Registry
from scorehost.registry import database

_COMPANIONS = ("registry.db", "registry.db-wal", "registry.db-shm")


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _modes_while_open(home: Path) -> dict[str, int]:
    """The modes of the database files while another process has the registry open and has written to it."""
    # A child, so the files are looked at while its connection holds the -wal and -shm open (they go at close).
    child = textwrap.dedent(
        """
        import os, sys, json
        from pathlib import Path
        from scorehost import Registry
        home = Path(sys.argv[1])
        (home.parent / "model.pkl").write_bytes(b"model")
        with Registry(home) as registry:
            registry.register("m", home.parent / "model.pkl")
            with registry._engine.connect() as conn:
                conn.exec_driver_sql("SELECT count(*) FROM versions").all()
                print(json.dumps({name: oct(os.stat(home / name).st_mode & 0o777) for name in sys.argv[2:]}))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", child, str(home), *_COMPANIONS], capture_output=True, text=True, timeout=60, check=True
    )
    return {name: int(mode, 8) for name, mode in json.loads(done.stdout.splitlines()[-1]).items()}


def test_a_workspace_folder_created_0755_gets_a_private_database(tmp_path: Path) -> None:
    home = tmp_path / "shared"
    home.mkdir(mode=0o755)
    os.chmod(home, 0o755)  # whatever the umask
    old_umask = os.umask(0o022)
    try:
        modes = _modes_while_open(home)
    finally:
        os.umask(old_umask)
    assert modes == {name: 0o600 for name in _COMPANIONS}
    assert _mode(home / "registry.db") == 0o600


def test_existing_files_readable_by_others_are_made_private_on_open(tmp_path: Path) -> None:
    home = tmp_path / "home"
    with Registry(home):
        pass
    db = home / "registry.db"
    with sqlite3.connect(db) as conn:  # a database from before, 0644, left with its -wal and -shm
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("CREATE TABLE IF NOT EXISTS scratch (x)")
        for name in _COMPANIONS:
            os.chmod(home / name, 0o644)
        database.connect(f"sqlite:///{db}").dispose()
        assert {name: _mode(home / name) for name in _COMPANIONS} == {name: 0o600 for name in _COMPANIONS}


def test_a_workspace_others_can_read_is_named_with_the_fix(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    home = tmp_path / "readable"
    home.mkdir()
    os.chmod(home, 0o755)
    with caplog.at_level(logging.WARNING, logger="scorehost.registry"), Registry(home):
        pass
    warnings = [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]
    assert len(warnings) == 1, warnings
    assert f"the workspace {home} is readable or writable by other users (mode 755)" in warnings[0]
    assert f"`chmod 700 {home}`" in warnings[0]


def test_a_private_workspace_says_nothing(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="scorehost.registry"), Registry(tmp_path / "private"):
        pass
    assert caplog.records == []
    assert _mode(tmp_path / "private") == 0o700
