"""The registry database: schema versions, forward migrations, SQLite settings."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from scorehost import Registry
from scorehost.errors import RegistrySchemaError
from scorehost.registry import database


def _schema_version(path: Path) -> int:
    with sqlite3.connect(path) as db:
        return int(db.execute("SELECT value FROM schema_info WHERE key = 'schema_version'").fetchone()[0])


def _tables(path: Path) -> set[str]:
    with sqlite3.connect(path) as db:
        return {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type IN ('table', 'index')")}


def test_a_new_database_is_created_at_the_latest_schema_in_wal_mode(tmp_path: Path) -> None:
    with Registry(tmp_path / "home"):
        pass
    db = tmp_path / "home" / "registry.db"
    assert _schema_version(db) == database.SCHEMA_VERSION == 2
    assert {"models", "versions", "files", "tags", "aliases", "properties", "files_by_digest"} <= _tables(db)
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_a_new_file_switched_to_wal_while_another_process_writes_it_waits_for_the_lock(tmp_path: Path) -> None:
    """SQLite fails the WAL switch of a new file at once, without its busy handler, while another connection holds
    the write lock (two processes opening one new workspace at once); connect() waits as for any other lock."""
    path = tmp_path / "workspace.db"
    path.touch()
    command = [sys.executable, "-c", _HOLD_WRITE_LOCK, str(path)]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as writer:
        assert writer.stdout is not None
        assert writer.stdout.readline() == "locked\n"
        started = time.monotonic()
        engine = database.connect(f"sqlite:///{path}")
        try:
            with engine.connect() as conn:
                assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        finally:
            engine.dispose()
        assert time.monotonic() - started >= 0.4  # it waited for the writer's commit rather than failing
        assert writer.wait(10) == 0


_HOLD_WRITE_LOCK = """
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
time.sleep(0.5)
db.execute("COMMIT")
"""


def test_a_version_1_database_is_migrated_forward_keeping_its_data(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    db = home / "registry.db"
    engine = database.connect(f"sqlite:///{db}")
    # Build the database exactly as the first release did: migration 1 only.
    with database.writing(engine) as conn:
        database.MIGRATIONS[0](conn)
        conn.execute(database.tables.schema_info.insert().values(key="schema_version", value="1"))
        conn.execute(database.tables.models.insert().values(name="m", last_version=1, created_at=1.0))
        conn.execute(
            database.tables.versions.insert().values(
                name="m",
                version=1,
                kind="file",
                root="model.pkl",
                digest="d" * 64,
                size=1,
                file_count=1,
                description="from v1",
                created_at=1.0,
            )
        )
    engine.dispose()
    assert "properties" not in _tables(db)

    with Registry(home) as registry:
        assert registry.get("m:1").description == "from v1"
        assert dict(registry.get("m:1").properties) == {}
    assert _schema_version(db) == 2
    assert {"properties", "files_by_digest"} <= _tables(db)


def test_a_database_from_a_newer_scorehost_is_refused(tmp_path: Path) -> None:
    with Registry(tmp_path / "home"):
        pass
    db = tmp_path / "home" / "registry.db"
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE schema_info SET value = '99' WHERE key = 'schema_version'")
    with pytest.raises(RegistrySchemaError, match=r"schema version 99, newer than this scorehost understands \(2\)"):
        Registry(tmp_path / "home")


def test_opening_twice_migrates_once(tmp_path: Path) -> None:
    with Registry(tmp_path / "home"), Registry(tmp_path / "home"):
        pass
    engine = database.connect(f"sqlite:///{tmp_path / 'home' / 'registry.db'}")
    assert database.migrate(engine) == database.SCHEMA_VERSION
    with database.read_only(engine) as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(database.tables.schema_info)).scalar() == 1
    engine.dispose()
