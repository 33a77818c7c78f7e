"""The control plane's tables under races, on SQLite and on PostgreSQL: processes released at once at a barrier,
several rounds each. Creates have one winner and losers told "exists already" (the same error on both databases),
generations count without gaps, and the first deployment alone takes the traffic."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import _races
import pytest

from scorehost.deploy.spec import EndpointSpec
from scorehost.deploy.state import DeployState
from scorehost.registry import database

PROCESSES = 8
ROUNDS = 5


@pytest.fixture
def state(database_url: str) -> Iterator[DeployState]:
    engine = database.connect(database_url)
    yield DeployState(engine)
    engine.dispose()


def _ok(outcomes: list[_races.Outcome]) -> list[object]:
    return [outcome.value for outcome in outcomes if outcome.ok]


def _losers(outcomes: list[_races.Outcome]) -> set[tuple[str | None, str]]:
    return {(outcome.error, outcome.message) for outcome in outcomes if not outcome.ok}


def test_endpoints_created_at_once_have_one_winner_and_the_rest_are_told_it_exists(
    database_url: str, state: DeployState
) -> None:
    rounds = [(database_url, f"ep-{number}") for number in range(ROUNDS)]
    for number, outcomes in enumerate(_races.race(_races.create_endpoint, rounds, PROCESSES)):
        assert _ok(outcomes) == [f"ep-{number}"], _races.failures([outcomes])
        message = f"endpoint 'ep-{number}' exists already; `scorehost endpoints show ep-{number}`"
        assert _losers(outcomes) == {("ResourceExists", message)}
    assert [endpoint.name for endpoint in state.endpoints()] == [f"ep-{number}" for number in range(ROUNDS)]


def test_deployments_created_at_once_have_one_winner_and_one_takes_the_traffic(
    database_url: str, state: DeployState, tmp_path: Path
) -> None:
    # Even rounds: everyone creates `blue`; odd rounds: each creates a deployment of its own.
    rounds = []
    for number in range(ROUNDS):
        state.create_endpoint(EndpointSpec(f"ep-{number}"))
        rounds.append((database_url, f"ep-{number}", None if number % 2 else "blue", str(tmp_path), True))
    for number, outcomes in enumerate(_races.race(_races.put_deployment, rounds, PROCESSES)):
        endpoint = state.endpoint(f"ep-{number}")
        if number % 2:
            assert _ok(outcomes) == [1] * PROCESSES, _races.failures([outcomes])
            assert len(state.deployments(endpoint.name)) == PROCESSES
        else:
            assert _ok(outcomes) == [1], _races.failures([outcomes])
            message = (
                f"deployment 'blue' exists already behind 'ep-{number}'; "
                f"`scorehost deployments update ep-{number} blue ...` changes it"
            )
            assert _losers(outcomes) == {("ResourceExists", message)}
            assert [record.spec.name for record in state.deployments(endpoint.name)] == ["blue"]
        assert list(endpoint.traffic.values()) == [100]


def test_deployment_updates_at_once_count_generations_without_gaps(
    database_url: str, state: DeployState, tmp_path: Path
) -> None:
    state.create_endpoint(EndpointSpec("ep-main"))
    state.put_deployment(_races.deployment_spec("ep-main", "blue", str(tmp_path)), create=True)
    update = (database_url, "ep-main", "blue", str(tmp_path), False)
    outcomes = _races.race(_races.put_deployment, [update] * ROUNDS, PROCESSES)
    assert not _races.failures(outcomes), "\n".join(_races.failures(outcomes))
    generations = sorted(outcome.value for row in outcomes for outcome in row)
    assert generations == list(range(2, ROUNDS * PROCESSES + 2))
    assert state.deployment("ep-main", "blue").generation == ROUNDS * PROCESSES + 1


def test_serving_reports_at_once_leave_the_newest_generation_serving(
    database_url: str, state: DeployState, tmp_path: Path
) -> None:
    rounds = []
    for number in range(ROUNDS):
        state.create_endpoint(EndpointSpec(f"ep-{number}"))
        state.put_deployment(_races.deployment_spec(f"ep-{number}", "blue", str(tmp_path)), create=True)
        rounds.append((database_url, f"ep-{number}", "blue", str(tmp_path)))
    outcomes = _races.race(_races.mark_serving, rounds, PROCESSES)
    assert not _races.failures(outcomes), "\n".join(_races.failures(outcomes))
    for number in range(ROUNDS):
        record = state.deployment(f"ep-{number}", "blue")
        assert record.serving_generation == PROCESSES
        assert record.failure is None
    runtimes = state.runtimes()
    assert sorted((endpoint, name, generation) for endpoint, name, generation, _ in runtimes) == [
        (f"ep-{number}", "blue", 1) for number in range(ROUNDS)
    ]
