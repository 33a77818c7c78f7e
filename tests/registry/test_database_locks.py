"""Connecting to the workspace database again, in a process that has it open, must not lose that process's
SQLite locks: with them gone, another process closing its last connection deletes the -wal file that the first
one still commits to, and those commits are lost (found with a control plane whose Registry opened a second
engine, and a CLI that read the database directly)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import sqlalchemy as sa

from scorehost.registry import database

_READER = """
import sys, sqlalchemy as sa
from scorehost.registry import database
engine = database.connect(sys.argv[1])
with database.read_only(engine) as conn:
    print(conn.execute(sa.text("select count(*) from notes")).scalar())
engine.dispose()
"""


def _count_elsewhere(url: str) -> int:
    done = subprocess.run([sys.executable, "-c", _READER, url], capture_output=True, text=True, timeout=60, check=True)
    return int(done.stdout)


def test_a_second_connect_in_the_same_process_keeps_the_wal_and_every_commit(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'registry.db'}"
    first = database.connect(url)
    with database.writing(first) as conn:
        conn.execute(sa.text("create table notes (n integer)"))
        conn.execute(sa.text("insert into notes values (1)"))
    keep_open = first.connect()  # a pooled connection the process holds, as a running control plane does
    try:
        second = database.connect(url)  # e.g. Registry(home) opened by the controller
        second.dispose()
        assert _count_elsewhere(url) == 1  # another process opens, reads and closes its last connection
        assert (tmp_path / "registry.db-wal").exists()
        with database.writing(first) as conn:
            conn.execute(sa.text("insert into notes values (2)"))
        assert _count_elsewhere(url) == 2  # the commit is where other processes (and a restart) find it
    finally:
        keep_open.close()
        first.dispose()
    assert _count_elsewhere(url) == 2
