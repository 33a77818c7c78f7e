"""The registry's metadata: SQLAlchemy Core tables, the engine, and forward migrations.

Any SQLAlchemy URL works; SQLite is the embedded default. SQLite connections run in WAL mode (readers
never wait for a writer) and every write transaction starts with `BEGIN IMMEDIATE`, so two processes
registering the same name queue for the write lock instead of both reading the same last version. On PostgreSQL a
write transaction takes an advisory lock on what it writes instead (registry/locking.py).
"""

from __future__ import annotations

import functools
import random
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from scorehost.errors import RegistrySchemaError
from scorehost.registry import database_errors, locking
from scorehost.registry.private import private_database, warn_if_shared
from scorehost.registry.space import database_error

__all__ = ["SCHEMA_VERSION", "connect", "metadata", "migrate", "read_only", "tables", "writing"]

metadata = sa.MetaData()

models = sa.Table(
    "models",
    metadata,
    sa.Column("name", sa.String(255), primary_key=True),
    # The highest version ever assigned: deleted numbers are never reused, so `name:3` means one thing forever.
    sa.Column("last_version", sa.Integer, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
)

versions = sa.Table(
    "versions",
    metadata,
    sa.Column("name", sa.String(255), sa.ForeignKey("models.name"), primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("kind", sa.String(8), nullable=False),  # "file" or "folder"
    sa.Column("root", sa.String(255), nullable=False),  # the registered file's or folder's own name
    sa.Column("digest", sa.String(64), nullable=False),  # sha256 of the manifest: one value per content
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("file_count", sa.Integer, nullable=False),
    sa.Column("description", sa.Text, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
)

files = sa.Table(
    "files",
    metadata,
    sa.Column("name", sa.String(255), primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("path", sa.Text, primary_key=True),  # POSIX, relative to the version folder, root included
    sa.Column("digest", sa.String(64), nullable=False),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.ForeignKeyConstraint(["name", "version"], ["versions.name", "versions.version"], ondelete="CASCADE"),
)

tags = sa.Table(
    "tags",
    metadata,
    sa.Column("name", sa.String(255), primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("key", sa.String(255), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
    sa.ForeignKeyConstraint(["name", "version"], ["versions.name", "versions.version"], ondelete="CASCADE"),
)

aliases = sa.Table(
    "aliases",
    metadata,
    sa.Column("name", sa.String(255), primary_key=True),
    sa.Column("alias", sa.String(255), primary_key=True),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.ForeignKeyConstraint(["name", "version"], ["versions.name", "versions.version"]),
)

# Added by migration 2 (kept as its own step so the migration path is exercised from the first release).
properties = sa.Table(
    "properties",
    metadata,
    sa.Column("name", sa.String(255), primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("key", sa.String(255), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
    sa.ForeignKeyConstraint(["name", "version"], ["versions.name", "versions.version"], ondelete="CASCADE"),
)
files_by_digest = sa.Index("files_by_digest", files.c.digest)

schema_info = sa.Table(
    "schema_info",
    metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)


class tables:  # noqa: N801 - a namespace, read as `tables.versions`
    """The tables, by name."""

    models = models
    versions = versions
    files = files
    tags = tags
    aliases = aliases
    properties = properties
    schema_info = schema_info


# CreateTable, not Table.create: the latter would also create indexes that later migrations add.
def _create_v1(conn: sa.Connection) -> None:
    if not sa.inspect(conn).has_table("schema_info"):  # another component may have created it first
        conn.execute(sa.schema.CreateTable(schema_info))
    for table in (models, versions, files, tags, aliases):
        conn.execute(sa.schema.CreateTable(table))


def _create_v2(conn: sa.Connection) -> None:
    conn.execute(sa.schema.CreateTable(properties))
    conn.execute(sa.schema.CreateIndex(files_by_digest))


MIGRATIONS: tuple[Callable[[sa.Connection], None], ...] = (_create_v1, _create_v2)
"""MIGRATIONS[i] takes a database from schema version i to i + 1; append, never edit."""

SCHEMA_VERSION = len(MIGRATIONS)


_BUSY_TIMEOUT_S = 60.0  # how long a SQLite connection waits for another process's write lock


def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    # The driver's own transaction handling is turned off so that `_begin` decides how each one starts.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout={int(_BUSY_TIMEOUT_S * 1000)}")
    _use_wal(cursor)
    for pragma in ("foreign_keys=ON", "synchronous=FULL"):
        cursor.execute(f"PRAGMA {pragma}")
    cursor.close()


def _use_wal(cursor: Any) -> None:
    """Switch the file to WAL, waiting for other processes' locks as any other statement does.

    On a new file the switch reads the first page and then writes it, and SQLite does not call its busy handler
    when a read turns into a write (that would deadlock two such connections): while another process writes the
    file, or switches it too, the PRAGMA fails at once with "database is locked". It is retried here instead.
    """
    deadline = time.monotonic() + _BUSY_TIMEOUT_S
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as error:
            if error.sqlite_errorcode & 0xFF != sqlite3.SQLITE_BUSY or time.monotonic() > deadline:
                raise
            time.sleep(random.uniform(0.005, 0.05))  # apart: two switching at once must not retry in step


def _sqlite_begin(conn: sa.Connection) -> None:
    immediate = conn.get_execution_options().get("scorehost_write", False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def _sqlite_file(engine: sa.Engine) -> Path | None:
    database = engine.url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database).absolute()


def connect(url: str) -> sa.Engine:
    """An engine for `url`, with SQLite set up for several processes at once.

    A SQLite file is made private (0600, with its -wal and -shm) before the first connection; an error that
    means its disk is full becomes StorageFull, which says where and what to do. A URL SQLAlchemy cannot use, and a
    failure to connect, become WorkspaceDatabaseError: one line with the URL (password masked) and the fix.
    """
    try:
        # Pre-ping a server's pooled connections: a long-running control plane outlives a database restart.
        engine = sa.create_engine(url, pool_pre_ping=sa.make_url(url).get_backend_name() != "sqlite")
    except (sa.exc.ArgumentError, ImportError) as error:
        raise database_errors.url_error(url, error) from None
    if engine.dialect.is_async:
        raise database_errors.async_driver_error(engine.url)
    if engine.dialect.name == "sqlite":
        sa.event.listen(engine, "connect", _sqlite_connect)
        sa.event.listen(engine, "begin", _sqlite_begin)
        path = _sqlite_file(engine)
        if path is not None:
            warn_if_shared(path.parent)
            private_database(path)
            sa.event.listen(engine, "handle_error", functools.partial(_explain_full_disk, path))
    database_errors.install(engine)
    return engine


def _explain_full_disk(path: Path, context: sa.engine.ExceptionContext) -> None:
    full = database_error(context.original_exception, path)
    if full is not None:
        raise full from context.original_exception


@contextmanager
def writing(engine: sa.Engine, *, lock: str | None = None) -> Iterator[sa.Connection]:
    """A write transaction that holds the database's write lock from its first statement.

    `lock` names what the transaction reads and then writes (`model:NAME`, `endpoint:NAME`): SQLite's one write lock
    covers everything, PostgreSQL takes an advisory lock on it (registry/locking.py says why).
    """
    with engine.connect() as conn:
        conn = conn.execution_options(scorehost_write=True, **locking.write_options(conn.dialect.name))
        with conn.begin():
            locking.begin_write(conn, lock)
            yield conn


@contextmanager
def read_only(engine: sa.Engine) -> Iterator[sa.Connection]:
    """A read transaction: one consistent snapshot."""
    with engine.connect() as conn:
        conn = conn.execution_options(**locking.read_options(conn.dialect.name))
        with conn.begin():
            yield conn


def _current_version(conn: sa.Connection, key: str) -> int:
    if not sa.inspect(conn).has_table("schema_info"):
        return 0
    value = conn.execute(sa.select(schema_info.c.value).where(schema_info.c.key == key)).scalar()
    return int(value) if value is not None else 0


@locking.retried
def migrate(
    engine: sa.Engine,
    *,
    key: str = "schema_version",
    steps: tuple[Callable[[sa.Connection], None], ...] = MIGRATIONS,
    what: str = "registry",
) -> int:
    """Bring one component's tables to their latest version (creating them when absent).

    Each component of the workspace database (the registry; endpoints and deployments) keeps its own
    version under its own `key` in schema_info. Returns the version found.
    """
    latest = len(steps)
    with read_only(engine) as conn:  # the common case needs no write lock
        if _current_version(conn, key) == latest:
            return latest
    # Re-read under the lock: another process may have migrated meanwhile. One lock for every component, as they
    # share schema_info; PostgreSQL's DDL is transactional, so the loser of the race sees the winner's whole schema.
    with writing(engine, lock=locking.SCHEMA_LOCK) as conn:
        if not sa.inspect(conn).has_table("schema_info") and key != "schema_version":
            conn.execute(sa.schema.CreateTable(schema_info))
        found = _current_version(conn, key)
        if found > latest:
            raise RegistrySchemaError(
                f"the {what} tables in {engine.url.render_as_string(hide_password=True)} have schema version "
                f"{found}, newer than this scorehost understands ({latest}); upgrade scorehost"
            )
        for step in steps[found:]:
            step(conn)
        if found < latest:
            if conn.execute(sa.select(schema_info.c.key).where(schema_info.c.key == key)).first() is None:
                conn.execute(schema_info.insert().values(key=key, value=str(latest)))
            else:
                conn.execute(schema_info.update().where(schema_info.c.key == key).values(value=str(latest)))
    return found
