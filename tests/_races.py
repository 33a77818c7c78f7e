"""Races between real processes: each opens its own engines, then all are released at once at a barrier.

`race(setup, rounds, processes)` starts `processes` workers (forkserver: fresh processes, no engine or connection
inherited from the test) that run every round together: per round each calls `setup(worker, *args)` before the
barrier (whatever must not be part of the race: the Registry or DeployState it opens once and keeps for all rounds,
a file to register) and the action it returns right after it, and reports what the action returned or raised. The
setups below are module-level so that the workers can unpickle them.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import queue
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scorehost import Registry
from scorehost.deploy.spec import DeploymentSpec, EndpointSpec
from scorehost.deploy.state import DeployState
from scorehost.environments.registered import EnvironmentRegistry
from scorehost.registry import database

__all__ = ["Outcome", "failures", "race"]

Setup = Callable[..., Callable[[], Any]]
_WAIT = 30.0  # seconds a worker waits at the barrier before the race counts as broken
_KEPT: dict[tuple[Any, ...], Any] = {}  # a worker's Registry and DeployState objects, opened once for all rounds
_CLOSE = contextlib.ExitStack()
_PRELOAD = ("scorehost.deploy.state", "scorehost.environments.registered", "scorehost.registry.registry", "psycopg")


@dataclass(frozen=True)
class Outcome:
    """What one worker's action did in one round: its value, or the error's type name and message."""

    value: Any = None
    error: str | None = None
    message: str = ""
    trace: str = ""

    @property
    def ok(self) -> bool:
        return self.error is None


def _worker(
    index: int, barrier: Any, results: Any, setup: Setup, rounds: Sequence[tuple[Any, ...]]
) -> None:  # pragma: no cover - runs in the workers
    with _CLOSE:
        for number, args in enumerate(rounds):
            try:
                action = setup(index, *args)
                barrier.wait(_WAIT)
            except Exception as error:
                barrier.abort()  # the others would wait for this one forever: every one reports and stops
                results.put((number, index, _failed(error)))
                return
            try:
                outcome = Outcome(value=action())
            except Exception as error:
                outcome = _failed(error)
            results.put((number, index, outcome))


def _kept(key: tuple[Any, ...], opens: Callable[[], Any]) -> Any:
    """The object `opens` makes, made once per worker (closed when it stops): the rounds race the action only."""
    if key not in _KEPT:
        _KEPT[key] = opens()
    return _KEPT[key]


def _failed(error: Exception) -> Outcome:
    return Outcome(None, type(error).__name__, str(error), traceback.format_exc())


def race(setup: Setup, rounds: Sequence[tuple[Any, ...]], processes: int) -> list[list[Outcome]]:
    """Run the rounds in `processes` workers at once; the outcomes, by round and then by worker (a round that
    could not start has fewer: each worker's reason)."""
    context = multiprocessing.get_context("forkserver")
    # Imported once, by the server the workers are forked from. By name: Python 3.11's forkserver cannot import this
    # module itself (it leaves tests/ off its path), so each worker would import all of scorehost again.
    context.set_forkserver_preload([__name__, *_PRELOAD])
    barrier = context.Barrier(processes)
    results = context.Queue()
    workers = [
        context.Process(target=_worker, args=(index, barrier, results, setup, list(rounds)), daemon=True)
        for index in range(processes)
    ]
    for worker in workers:
        worker.start()
    found: list[list[Outcome | None]] = [[None] * processes for _ in rounds]
    deadline = time.monotonic() + _WAIT * 2
    try:
        while any(outcome is None for row in found for outcome in row):
            try:
                number, index, outcome = results.get(timeout=0.2)
                found[number][index] = outcome
            except queue.Empty:
                if all(worker.exitcode is not None for worker in workers):
                    break  # every worker stopped, and nothing more is coming
                if time.monotonic() > deadline:
                    codes = [worker.exitcode for worker in workers]
                    raise AssertionError(f"the race stalled; worker exit codes {codes}") from None
    finally:
        for worker in workers:
            worker.join(10)
            if worker.is_alive():
                worker.kill()
                worker.join()
        results.close()
        results.join_thread()
    return [[outcome for outcome in row if outcome is not None] for row in found]


def failures(outcomes: list[list[Outcome]]) -> list[str]:
    """Every error, with its trace: what an assertion shows when a race went wrong."""
    return [f"round {n}: {o.error}: {o.message}\n{o.trace}" for n, row in enumerate(outcomes) for o in row if not o.ok]


# -- setups (run in the workers) --------------------------------------------------------------------


def register(worker: int, url: str, home: str, name: str, same_content: bool = False) -> Any:
    """Register a small file as the next version of `name`: this worker's own, or (`same_content`) everyone's, with
    `reuse_identical`."""
    registry = _registry(url, home)
    source = Path(home).parent / "sources" / os.urandom(8).hex() / "model.bin"
    source.parent.mkdir(parents=True)
    source.write_text(f"{name}, the same for all" if same_content else f"{name} from worker {worker}")
    return lambda: registry.register(name, source, reuse_identical=same_content).version


def _registry(url: str, home: str) -> Any:
    return _kept(("registry", url, home), lambda: _CLOSE.enter_context(Registry(home, url=url)))


def set_alias(worker: int, url: str, home: str, name: str, versions: list[int]) -> Any:
    registry = _registry(url, home)
    return lambda: registry.set_alias(name, "production", versions[worker % len(versions)]).version


def open_workspace(worker: int, url: str, home: str) -> Any:
    """Open every component of a workspace database, in an order that depends on the worker."""

    def action() -> None:
        opens: list[Callable[[], None]] = [
            lambda: Registry(home, url=url).close(),
            lambda: _open_state(url),
            lambda: EnvironmentRegistry(Path(home), url=url).close(),
        ]
        shift = worker % len(opens)
        for open_one in opens[shift:] + opens[:shift]:
            open_one()

    return action


def _open_state(url: str) -> None:
    engine = database.connect(url)
    try:
        DeployState(engine)
    finally:
        engine.dispose()


def _state(url: str) -> Any:
    def opens() -> Any:
        engine = database.connect(url)
        _CLOSE.callback(engine.dispose)
        return DeployState(engine)

    return _kept(("state", url), opens)


def create_endpoint(worker: int, url: str, name: str) -> Any:
    state = _state(url)
    return lambda: state.create_endpoint(EndpointSpec(name)).name


def deployment_spec(endpoint: str, name: str, folder: str, instances: int = 1) -> DeploymentSpec:
    return DeploymentSpec(endpoint, name, Path("score.py"), Path(folder), instances=instances)


def put_deployment(worker: int, url: str, endpoint: str, name: str | None, folder: str, create: bool) -> Any:
    """Create or update deployment `name` (None: one named after the worker) behind `endpoint`."""
    state = _state(url)
    spec = deployment_spec(endpoint, name or f"dep-{worker}", folder, instances=worker + 1)
    return lambda: state.put_deployment(spec, create=create).generation


def mark_serving(worker: int, url: str, endpoint: str, name: str, folder: str) -> Any:
    """Report generation worker + 1 ready (odd workers: first report generation worker + 1 failed)."""
    state = _state(url)
    spec = deployment_spec(endpoint, name, folder)

    def action() -> None:
        if worker % 2:
            state.mark_failed(endpoint, name, worker + 1, "no")
        state.mark_serving(spec, worker + 1)
        state.save_runtime(endpoint, name, 1, {"worker": worker})

    return action


def register_environment(worker: int, url: str, home: str, name: str) -> Any:
    environments = _kept(("environments", url), lambda: _CLOSE.enter_context(EnvironmentRegistry(Path(home), url=url)))
    return lambda: environments.register(name, None, {"dependencies": [f"worker{worker}"]}).version
