"""Races on the workspace database, on SQLite and on PostgreSQL: processes released at once at a barrier, several
rounds each. Versions are numbered without gaps or failures, alias moves all land, and a workspace database that
many processes open at once for the first time comes out whole."""

from __future__ import annotations

from pathlib import Path

import _races
import pytest
import sqlalchemy as sa

from scorehost import Registry
from scorehost.deploy import state
from scorehost.environments import registered
from scorehost.registry import database

PROCESSES = 8
ROUNDS = 5


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


def _values(outcomes: list[list[_races.Outcome]]) -> list[list[object]]:
    assert not _races.failures(outcomes), "\n".join(_races.failures(outcomes))
    return [[outcome.value for outcome in row] for row in outcomes]


def test_registrations_of_a_new_name_are_numbered_1_to_n(database_url: str, home: Path) -> None:
    Registry(home, url=database_url).close()
    rounds = [(database_url, str(home), f"new{number}") for number in range(ROUNDS)]
    for versions in _values(_races.race(_races.register, rounds, PROCESSES)):
        assert sorted(versions) == list(range(1, PROCESSES + 1))  # type: ignore[type-var]


def test_registrations_of_an_existing_name_continue_its_numbering(database_url: str, home: Path) -> None:
    with Registry(home, url=database_url) as registry:
        source = home.parent / "first.bin"
        source.write_bytes(b"first")
        registry.register("shared", source)
    outcomes = _races.race(_races.register, [(database_url, str(home), "shared")] * ROUNDS, PROCESSES)
    numbers = sorted(version for row in _values(outcomes) for version in row)  # type: ignore[type-var]
    assert numbers == list(range(2, ROUNDS * PROCESSES + 2))
    with Registry(home, url=database_url) as registry:
        assert [v.version for v in registry.list_versions("shared")] == list(range(1, ROUNDS * PROCESSES + 2))
        assert registry.get("shared").version == ROUNDS * PROCESSES + 1


def test_identical_content_registered_at_once_makes_one_version(database_url: str, home: Path) -> None:
    Registry(home, url=database_url).close()
    rounds = [(database_url, str(home), f"same{number}", True) for number in range(ROUNDS)]
    for versions in _values(_races.race(_races.register, rounds, PROCESSES)):
        assert versions == [1] * PROCESSES


def test_alias_moves_at_once_all_land_on_one_version(database_url: str, home: Path) -> None:
    with Registry(home, url=database_url) as registry:
        for number in range(3):
            source = home.parent / f"v{number}.bin"
            source.write_bytes(f"version {number}".encode())
            registry.register("m", source)
    outcomes = _races.race(_races.set_alias, [(database_url, str(home), "m", [1, 2, 3])] * ROUNDS, PROCESSES)
    for row in _values(outcomes):
        assert row == [1 + worker % 3 for worker in range(PROCESSES)]
    engine = database.connect(database_url)
    try:
        with database.read_only(engine) as conn:
            rows = conn.execute(sa.select(database.tables.aliases)).all()
    finally:
        engine.dispose()
    assert [(row.name, row.alias) for row in rows] == [("m", "production")]
    assert rows[0].version in (1, 2, 3)


def test_environment_versions_registered_at_once_are_numbered_1_to_n(database_url: str, home: Path) -> None:
    Registry(home, url=database_url).close()
    rounds = [(database_url, str(home), f"env{number}") for number in range(ROUNDS)]
    for versions in _values(_races.race(_races.register_environment, rounds, PROCESSES)):
        assert sorted(int(version) for version in versions) == list(range(1, PROCESSES + 1))  # type: ignore[call-overload]


def test_an_empty_database_opened_by_many_processes_at_once(
    database_url: str, home: Path, request: pytest.FixtureRequest
) -> None:
    urls = [database_url] + [_another(database_url, request, number) for number in range(1, 3)]  # a database a round
    _values(_races.race(_races.open_workspace, [(url, str(home)) for url in urls], PROCESSES))
    expected = {
        "schema_version": str(database.SCHEMA_VERSION),
        "deploy_schema_version": str(len(state.MIGRATIONS)),
        "environments_schema_version": str(len(registered.MIGRATIONS)),
    }
    for url in urls:
        engine = database.connect(url)
        try:
            with database.read_only(engine) as conn:
                found = {row.key: row.value for row in conn.execute(sa.select(database.tables.schema_info))}
                names = set(sa.inspect(conn).get_table_names())
        finally:
            engine.dispose()
        assert found == expected
        assert {"models", "aliases", "properties", "endpoints", "deployment_serving", "environments"} <= names


def _another(url: str, request: pytest.FixtureRequest, number: int) -> str:
    """One more fresh database of the same kind as `url`."""
    if url.startswith("sqlite"):
        return url.replace("workspace.db", f"workspace{number}.db")
    server = request.getfixturevalue("postgres")
    return str(server.database())
