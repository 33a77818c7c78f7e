"""How write transactions lock on PostgreSQL (registry/locking.py): what they lock, at which isolation level, and a
deadlock's victim run again. The races themselves are in test_concurrency_databases.py and test_state_concurrency.py.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import psycopg
import pytest
import sqlalchemy as sa
from _postgres import PostgresServer

from scorehost.registry import database, locking


def _alter(url: str, setting: str) -> None:
    plain = sa.make_url(url)
    name = plain.database
    server = plain.set(drivername="postgresql", database="postgres").render_as_string(hide_password=False)
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f'ALTER DATABASE "{name}" SET {setting}')


@pytest.fixture
def engine(postgres: PostgresServer) -> Iterator[sa.Engine]:
    url = postgres.database()
    # A server whose default is stricter than READ COMMITTED, and deadlocks found in 50 ms rather than a second.
    _alter(url, "default_transaction_isolation = 'serializable'")
    _alter(url, "deadlock_timeout = '50ms'")
    opened = database.connect(url)
    yield opened
    opened.dispose()


def _try_lock(engine: sa.Engine, lock: str) -> bool:
    with engine.connect() as conn:
        taken = conn.execute(sa.select(sa.func.pg_try_advisory_lock(locking.advisory_key(lock)))).scalar()
        if taken:
            conn.execute(sa.select(sa.func.pg_advisory_unlock(locking.advisory_key(lock))))
        conn.rollback()
        return bool(taken)


def test_a_write_locks_its_own_name_only_until_it_ends(engine: sa.Engine) -> None:
    with database.writing(engine, lock="model:a"):
        assert not _try_lock(engine, "model:a")
        assert _try_lock(engine, "model:b")
        assert _try_lock(engine, "endpoint:a")
    assert _try_lock(engine, "model:a")


def test_writes_read_committed_and_reads_one_snapshot_whatever_the_server_default(engine: sa.Engine) -> None:
    level = sa.text("SHOW transaction_isolation")
    with engine.connect() as conn:
        assert conn.execute(level).scalar() == "serializable"
    with database.writing(engine, lock="model:a") as conn:
        assert conn.execute(level).scalar() == "read committed"
    with database.read_only(engine) as conn:
        assert conn.execute(level).scalar() == "repeatable read"
    with engine.connect() as conn:  # nothing stays set on the pooled connection
        assert conn.execute(level).scalar() == "serializable"


def test_a_deadlock_victim_is_run_again(engine: sa.Engine) -> None:
    with database.writing(engine) as conn:
        conn.execute(sa.text("CREATE TABLE counters (id INTEGER PRIMARY KEY, n INTEGER NOT NULL)"))
        conn.execute(sa.text("INSERT INTO counters VALUES (1, 0), (2, 0)"))
    both_hold_one = threading.Barrier(2, timeout=30)
    attempts = {1: 0, 2: 0}

    @locking.retried
    def bump(first: int, second: int) -> None:
        attempts[first] += 1
        with database.writing(engine) as conn:  # no name lock: rows taken in opposite orders deadlock
            conn.execute(sa.text("UPDATE counters SET n = n + 1 WHERE id = :id"), {"id": first})
            if attempts[first] == 1:
                both_hold_one.wait()
            conn.execute(sa.text("UPDATE counters SET n = n + 1 WHERE id = :id"), {"id": second})

    errors: list[BaseException] = []

    def run(first: int, second: int) -> None:
        try:
            bump(first, second)
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=run, args=pair) for pair in ((1, 2), (2, 1))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors
    assert sorted(attempts.values()) == [1, 2]  # the server chose one victim, and it ran again
    with database.read_only(engine) as conn:
        assert dict(conn.execute(sa.text("SELECT id, n FROM counters")).all()) == {1: 2, 2: 2}
