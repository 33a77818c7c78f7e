"""How writes to the workspace database stay correct when many processes make them at once, per dialect.

SQLite has one write lock for the whole file, and a write transaction takes it with its first statement
(`BEGIN IMMEDIATE`): writers run one after another, so reading a row and then writing what follows from it is safe.
PostgreSQL locks rows, and a row that does not exist yet locks nothing: two transactions both read "no model
`m`" (or "no endpoint `e`") and both insert it, and one dies with a unique violation. There, a write transaction
names what it reads and writes (`lock`, e.g. `model:m`) and takes a transaction-scoped advisory lock on it first,
at READ COMMITTED, so that every statement after it sees all that the previous holder committed: writers of the same
thing queue as on SQLite, writers of different things do not wait for each other. Other dialects get no lock here.

`retried` runs a whole transaction again when the server chose it as a deadlock's victim or could not serialise it
(SQLSTATE 40P01, 40001): neither should happen with the locks above, but a write that touches rows outside what it
locks (a migration, a future write taking two locks) must not turn into a user's error.
"""

from __future__ import annotations

import functools
import hashlib
import random
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ParamSpec, TypeVar

import sqlalchemy as sa

__all__ = [
    "SCHEMA_LOCK",
    "advisory_key",
    "begin_write",
    "insert_new",
    "read_options",
    "retried",
    "upsert",
    "write_options",
]

P = ParamSpec("P")
R = TypeVar("R")

_RETRIED_STATES = frozenset({"40001", "40P01"})  # serialization_failure, deadlock_detected
_ATTEMPTS = 5
SCHEMA_LOCK = "schema"  # creating or migrating any component's tables: schema_info is shared


def advisory_key(lock: str) -> int:
    """The signed 64-bit key of PostgreSQL's advisory lock for `lock` (prefixed: the database may be shared)."""
    digest = hashlib.blake2b(f"scorehost:{lock}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def write_options(dialect: str) -> dict[str, Any]:
    """Execution options of a write transaction: READ COMMITTED on PostgreSQL, whatever the server's default, so
    that statements after the lock read what its last holder committed."""
    return {"isolation_level": "READ COMMITTED"} if dialect == "postgresql" else {}


def read_options(dialect: str) -> dict[str, Any]:
    """Execution options of a read transaction: one snapshot for all its statements (SQLite gives that already).
    A read-only transaction never fails to serialise, so REPEATABLE READ costs nothing."""
    return {"isolation_level": "REPEATABLE READ"} if dialect == "postgresql" else {}


def begin_write(conn: sa.Connection, lock: str | None) -> None:
    """The first statement of a write transaction: take `lock` where the dialect needs it (see the module)."""
    if lock is not None and conn.dialect.name == "postgresql":
        conn.execute(sa.select(sa.func.pg_advisory_xact_lock(advisory_key(lock))))


def _sqlstate(error: sa.exc.DBAPIError) -> str | None:
    original = error.orig
    state = getattr(original, "sqlstate", None) or getattr(original, "pgcode", None)  # psycopg 3, psycopg2
    return state if isinstance(state, str) else None


def retried(function: Callable[P, R]) -> Callable[P, R]:
    """`function`, run again (a few times, after a short random pause) when its transaction was a deadlock's victim
    or failed to serialise. Only for functions whose one effect is that transaction."""

    @functools.wraps(function)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        for attempt in range(1, _ATTEMPTS + 1):
            try:
                return function(*args, **kwargs)
            except sa.exc.DBAPIError as error:
                if attempt == _ATTEMPTS or _sqlstate(error) not in _RETRIED_STATES:
                    raise
            time.sleep(random.uniform(0.005, 0.02 * 2**attempt))
        raise AssertionError("unreachable")  # pragma: no cover

    return run


def _insert(conn: sa.Connection, table: sa.Table) -> Any:
    # The dialect's module, imported by the engine that uses it: importing both here cost every command that opens
    # a registry about 0.1 s of CPU for PostgreSQL's, which a SQLite workspace never needs.
    name = conn.dialect.name
    if name == "postgresql":
        from sqlalchemy.dialects import postgresql

        return postgresql.insert(table)
    if name == "sqlite":
        from sqlalchemy.dialects import sqlite

        return sqlite.insert(table)
    return None


def insert_new(conn: sa.Connection, table: sa.Table, values: Mapping[str, Any]) -> bool:
    """Insert a row unless one with its primary key exists (which another transaction may just have made);
    whether it was inserted."""
    insert = _insert(conn, table)
    if insert is None:  # no ON CONFLICT: a savepoint keeps the transaction usable after the unique violation
        try:
            with conn.begin_nested():
                conn.execute(table.insert().values(**values))
        except sa.exc.IntegrityError:
            return False
        return True
    # preserve_rowcount: SQLAlchemy keeps an INSERT's count only when asked (RETURNING would need SQLite 3.35).
    statement = insert.values(**values).on_conflict_do_nothing().execution_options(preserve_rowcount=True)
    return bool(conn.execute(statement).rowcount == 1)


def upsert(conn: sa.Connection, table: sa.Table, values: Mapping[str, Any], keys: Sequence[str]) -> None:
    """Insert a row, or update the one with the same `keys` (its primary key) to `values`."""
    insert = _insert(conn, table)
    if insert is None:
        where = [table.c[key] == values[key] for key in keys]
        if not conn.execute(table.update().where(*where).values(**values)).rowcount:
            conn.execute(table.insert().values(**values))
        return
    changes = {name: value for name, value in values.items() if name not in keys}
    conn.execute(insert.values(**values).on_conflict_do_update(index_elements=list(keys), set_=changes))
