"""Declared endpoints, deployments and traffic in a real workspace database: SQLite, and PostgreSQL where the tests
take `state`."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from scorehost import Registry
from scorehost.deploy.spec import AuthMode, DeploymentSpec, EndpointSpec, Traffic
from scorehost.deploy.state import DeployState
from scorehost.errors import InvalidSpec, ResourceExists, UnknownResource
from scorehost.registry import database


@pytest.fixture
def state(database_url: str) -> DeployState:
    engine = database.connect(database_url)
    yield DeployState(engine)  # type: ignore[misc]
    engine.dispose()


def _spec(tmp_path: Path, name: str = "blue", **changes: object) -> DeploymentSpec:
    return DeploymentSpec("mnist", name, Path("score.py"), tmp_path, **changes)  # type: ignore[arg-type]


def test_endpoints_get_two_distinct_keys_and_names_are_unique(state: DeployState) -> None:
    created = state.create_endpoint(EndpointSpec("mnist"))
    assert created.auth is AuthMode.KEY
    assert created.primary_key != created.secondary_key
    assert len(created.primary_key) == 43
    assert "keys" not in created.to_json()
    assert created.to_json(keys=True)["keys"]["primary"] == created.primary_key
    with pytest.raises(ResourceExists, match="endpoint 'mnist' exists already"):
        state.create_endpoint(EndpointSpec("mnist", auth=AuthMode.NONE))
    state.create_endpoint(EndpointSpec("open", auth=AuthMode.NONE))
    assert [e.name for e in state.endpoints()] == ["mnist", "open"]
    with pytest.raises(UnknownResource, match=r"no endpoint named 'nope' \(endpoints: mnist, open\)"):
        state.endpoint("nope")


def test_regenerating_one_key_keeps_the_other(state: DeployState) -> None:
    before = state.create_endpoint(EndpointSpec("mnist"))
    after = state.regenerate_key("mnist", "primary")
    assert after.primary_key != before.primary_key
    assert after.secondary_key == before.secondary_key
    with pytest.raises(InvalidSpec, match="'primary' or 'secondary'"):
        state.regenerate_key("mnist", "tertiary")  # type: ignore[arg-type]


def test_deployments_count_generations_and_the_first_takes_all_traffic(state: DeployState, tmp_path: Path) -> None:
    state.create_endpoint(EndpointSpec("mnist"))
    blue = state.put_deployment(_spec(tmp_path, models=("m:1",)), create=True)
    assert blue.generation == 1
    assert state.endpoint("mnist").traffic == {"blue": 100}
    state.put_deployment(_spec(tmp_path, "green"), create=True)
    assert state.endpoint("mnist").traffic == {"blue": 100}  # a new deployment starts with no traffic

    updated = state.put_deployment(_spec(tmp_path, models=("m:2",), instances=2), create=False)
    assert (updated.generation, updated.spec.models, updated.spec.instances) == (2, ("m:2",), 2)
    assert [d.spec.name for d in state.deployments("mnist")] == ["blue", "green"]
    with pytest.raises(ResourceExists, match="`scorehost deployments update mnist blue ...` changes it"):
        state.put_deployment(_spec(tmp_path), create=True)
    with pytest.raises(UnknownResource, match=r"endpoint 'mnist' has no deployment 'red' \(deployments: blue, green\)"):
        state.put_deployment(_spec(tmp_path, "red"), create=False)
    with pytest.raises(UnknownResource, match="no endpoint named 'other'"):
        state.put_deployment(DeploymentSpec("other", "blue", Path("score.py"), tmp_path), create=True)


def test_traffic_and_mirror(state: DeployState, tmp_path: Path) -> None:
    state.create_endpoint(EndpointSpec("mnist"))
    state.put_deployment(_spec(tmp_path), create=True)
    state.put_deployment(_spec(tmp_path, "green"), create=True)
    state.put_deployment(_spec(tmp_path, "shadow"), create=True)
    record = state.set_traffic("mnist", Traffic({"blue": 90, "green": 10}, mirror="shadow", mirror_percent=20))
    assert record.traffic == {"blue": 90, "green": 10}
    assert record.to_json()["mirror"] == {"deployment": "shadow", "percent": 20}
    with pytest.raises(InvalidSpec, match=r"has no deployment 'red' \(deployments: blue, green, shadow\)"):
        state.set_traffic("mnist", Traffic({"blue": 50, "red": 50}))
    assert state.endpoint("mnist").traffic == {"blue": 90, "green": 10}  # a refused change changes nothing

    with pytest.raises(InvalidSpec, match=r"mnist/green takes 10% of the traffic; move it first"):
        state.delete_deployment("mnist", "green")
    state.delete_deployment("mnist", "shadow")
    assert state.endpoint("mnist").mirror is None
    state.set_traffic("mnist", Traffic({"blue": 100, "green": 0}))
    state.delete_deployment("mnist", "green")
    assert state.endpoint("mnist").traffic == {"blue": 100}


def test_deleting_an_endpoint_returns_its_deployments(state: DeployState, tmp_path: Path) -> None:
    state.create_endpoint(EndpointSpec("mnist"))
    state.put_deployment(_spec(tmp_path), create=True)
    state.save_runtime("mnist", "blue", 1, {"port": 1234})
    assert state.runtimes() == [("mnist", "blue", 1, {"port": 1234})]
    removed = state.delete_endpoint("mnist")
    assert [r.spec.name for r in removed] == ["blue"]
    assert state.endpoints() == []
    assert state.runtimes() == []


def test_runtime_records_are_replaced_and_forgotten(state: DeployState, tmp_path: Path) -> None:
    state.create_endpoint(EndpointSpec("mnist"))
    state.put_deployment(_spec(tmp_path), create=True)
    state.save_runtime("mnist", "blue", 1, {"port": 1})
    state.save_runtime("mnist", "blue", 1, {"port": 2})
    state.save_runtime("mnist", "blue", 2, {"port": 3})
    assert sorted(r[2:] for r in state.runtimes()) == [(1, {"port": 2}), (2, {"port": 3})]
    state.forget_runtime("mnist", "blue", 1)
    assert [r[2] for r in state.runtimes()] == [2]


def test_the_deploy_tables_share_the_registry_database(tmp_path: Path) -> None:
    home = tmp_path / "home"
    engine = database.connect(f"sqlite:///{home / 'registry.db'}")
    home.mkdir()
    DeployState(engine).create_endpoint(EndpointSpec("mnist"))  # first: creates schema_info itself
    engine.dispose()
    with Registry(home) as registry:  # then the registry opens the same file
        model = tmp_path / "model.pkl"
        model.write_bytes(b"x")
        registry.register("m", model)
    with sqlite3.connect(home / "registry.db") as db:
        versions = dict(db.execute("SELECT key, value FROM schema_info").fetchall())
    assert versions["deploy_schema_version"] == "3"
    assert "schema_version" in versions  # the registry's own, kept beside ours


def test_declared_and_serving_generations_are_kept_apart(state: DeployState, tmp_path: Path) -> None:
    """An update declares generation 2; generation 1 serves until 2 becomes ready, and a failure of 2 is kept."""
    state.create_endpoint(EndpointSpec("mnist"))
    first = state.put_deployment(_spec(tmp_path), create=True)
    assert (first.generation, first.serving_generation, first.serving_spec) == (1, None, None)
    state.mark_serving(first.spec, 1)
    second = state.put_deployment(_spec(tmp_path, instances=2), create=False)
    state.mark_failed("mnist", "blue", 2, "init() raised")
    record = state.deployment("mnist", "blue")
    assert (record.generation, record.serving_generation, record.declared_failure) == (2, 1, "init() raised")
    assert record.serving_spec == first.spec  # what a restart starts again, not the declared spec
    assert record.to_json()["serving_generation"] == 1
    assert record.to_json()["failure"] == "init() raised"
    state.mark_serving(first.spec, 0)  # an older generation never replaces a newer one
    state.mark_failed("mnist", "blue", 1, "too old")  # nor does the failure of one older than what serves
    assert state.deployment("mnist", "blue").serving_generation == 1
    state.mark_serving(second.spec, 2)
    record = state.deployment("mnist", "blue")
    assert (record.serving_generation, record.declared_failure, record.failure) == (2, None, None)
    state.put_deployment(_spec(tmp_path, "green"), create=True)
    state.set_traffic("mnist", Traffic({"blue": 100}))
    state.delete_endpoint("mnist")
    state.create_endpoint(EndpointSpec("mnist"))
    assert state.put_deployment(_spec(tmp_path), create=True).serving_generation is None  # nothing left behind


def test_a_version_1_workspace_gains_the_serving_table(tmp_path: Path) -> None:
    from scorehost.deploy import state as module

    path = tmp_path / "registry.db"
    engine = database.connect(f"sqlite:///{path}")
    database.migrate(engine)
    database.migrate(engine, key="deploy_schema_version", steps=module.MIGRATIONS[:1], what="endpoints")
    engine.dispose()
    engine = database.connect(f"sqlite:///{path}")
    state = DeployState(engine)
    state.create_endpoint(EndpointSpec("mnist"))
    record = state.put_deployment(_spec(tmp_path), create=True)
    state.mark_serving(record.spec, 1)
    assert state.deployment("mnist", "blue").serving_generation == 1
    engine.dispose()


def test_an_endpoints_table_from_before_tags_gains_them(tmp_path: Path) -> None:
    """Migration 3 adds endpoint tags to a workspace made by an older scorehost (its endpoints kept, tags empty)."""
    from scorehost.deploy.state import MIGRATIONS

    url = f"sqlite:///{tmp_path / 'registry.db'}"
    engine = database.connect(url)
    database.migrate(engine)
    database.migrate(engine, key="deploy_schema_version", steps=MIGRATIONS[:2], what="endpoints")
    with engine.begin() as conn:  # the table as version 2 made it: no tags column
        conn.exec_driver_sql("ALTER TABLE endpoints DROP COLUMN tags")
        conn.exec_driver_sql(
            "INSERT INTO endpoints (name, auth, description, primary_key, secondary_key, mirror, mirror_percent, "
            "created_at, updated_at) VALUES ('old', 'key', '', 'a', 'b', NULL, 0, 0, 0)"
        )
    state = DeployState(engine)
    assert state.endpoint("old").tags == {}
    assert state.describe_endpoint("old", tags={"team": "vision"}).tags == {"team": "vision"}
    state.create_endpoint(EndpointSpec("new-one", tags={"a": "b"}))
    assert state.endpoint("new-one").tags == {"a": "b"}
    engine.dispose()
