"""The controller with the real local backend and a real SQLite state: a generation whose backend fails in a way
no backend is meant to (a library's bug) fails with the reason, and the controller goes on rolling."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from scorehost.deploy.backends import LocalBackend
from scorehost.deploy.backends.local_generation import Generation
from scorehost.deploy.controlplane.controller import Controller
from scorehost.deploy.spec import DeploymentSpec, EndpointSpec
from scorehost.deploy.state import DeploymentRecord, DeployState
from scorehost.registry import database

SCRIPTS = Path(__file__).parents[1] / "scripts"


class FailsFirstStart(LocalBackend):
    """The real local backend, except that its first start() raises what Ray Serve's client once raised when two
    threads called it at once."""

    def __init__(self, home: Path) -> None:
        super().__init__(home)
        self.failures = 1

    def start(self, spec: DeploymentSpec, generation: int) -> Generation:
        if self.failures:
            self.failures -= 1
            raise ValueError("<module 'ray.serve._private.request_router'> is not registered for pickle by value")
        return super().start(spec, generation)


@pytest.fixture
def controller(tmp_path: Path) -> Iterator[Controller]:
    home = Path(os.environ["SCOREHOST_HOME"])
    engine = database.connect(f"sqlite:///{tmp_path / 'registry.db'}")
    made = Controller(DeployState(engine), FailsFirstStart(home), home, ready_timeout=60, drain_seconds=1)
    yield made
    made.close(stop_deployments=True)
    engine.dispose()


def _settled(controller: Controller, record: DeploymentRecord, timeout: float = 60) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    while (status := controller.status(record))["state"] in ("starting", "updating"):
        assert time.monotonic() < deadline, status
        time.sleep(0.05)
    return status


def test_an_unexpected_backend_error_fails_the_generation_and_the_controller_goes_on(controller: Controller) -> None:
    controller.state.create_endpoint(EndpointSpec("mnist"))
    spec = DeploymentSpec(endpoint="mnist", name="blue", script=SCRIPTS / "echo.py", code_dir=SCRIPTS)
    first = controller.state.put_deployment(spec, create=True)
    controller.deploy(first)
    failed = _settled(controller, first)
    assert failed["state"] == "failed"
    assert str(failed["error"]).startswith("unexpected ValueError: <module 'ray.serve._private.request_router'>")
    assert "the control plane's log has the traceback" in str(failed["error"])
    second = controller.state.put_deployment(spec, create=False)  # the next generation still rolls out
    controller.deploy(second)
    assert _settled(controller, second)["state"] == "ready"


@pytest.fixture
def workspace(tmp_path: Path) -> Iterator[tuple[DeployState, Path]]:
    """A real state over SQLite; controllers made with `_controller` share it, as restarts of one control plane do."""
    engine = database.connect(f"sqlite:///{tmp_path / 'registry.db'}")
    yield DeployState(engine), Path(os.environ["SCOREHOST_HOME"])
    engine.dispose()


@pytest.fixture
def controllers(workspace: tuple[DeployState, Path]) -> Iterator[list[Controller]]:
    made: list[Controller] = []
    yield made
    for controller in made:
        controller.close(stop_deployments=True)


def _controller(workspace: tuple[DeployState, Path], made: list[Controller]) -> Controller:
    state, home = workspace
    controller = Controller(state, LocalBackend(home), home, ready_timeout=60, drain_seconds=1)
    made.append(controller)
    return controller


def _serving_pid(controller: Controller, record: DeploymentRecord) -> int:
    status = controller.status(record)
    assert status["generation"] == status["serving_generation"], status
    return int(status["instances"][0]["pid"])


def _with_broken_update(controller: Controller) -> tuple[DeploymentRecord, DeploymentRecord]:
    """Generation 1 (echo) serves; generation 2 (init() raises) failed beside it."""
    controller.state.create_endpoint(EndpointSpec("mnist"))
    good = DeploymentSpec(endpoint="mnist", name="blue", script=SCRIPTS / "echo.py", code_dir=SCRIPTS)
    first = controller.state.put_deployment(good, create=True)
    controller.deploy(first)
    assert _settled(controller, first)["state"] == "ready"
    broken = DeploymentSpec(endpoint="mnist", name="blue", script=SCRIPTS / "init_fails.py", code_dir=SCRIPTS)
    second = controller.state.put_deployment(broken, create=False)
    controller.deploy(second)
    status = _settled(controller, second)
    assert (status["state"], status["serving_generation"], status["declared_generation"]) == ("ready", 1, 2)
    assert "model file is corrupt" in str(status["error"])
    return first, second


def _failed_again(controller: Controller, record: DeploymentRecord, timeout: float = 60) -> dict[str, object]:
    """Wait for the declared generation's retry to fail (an older one serving meanwhile)."""
    deadline = time.monotonic() + timeout
    while not (status := controller.status(record))["error"] or status["state"] != "ready":
        assert time.monotonic() < deadline, status
        time.sleep(0.05)
    return status


def test_a_restart_after_a_failed_update_keeps_serving_the_generation_that_served(
    workspace: tuple[DeployState, Path], controllers: list[Controller]
) -> None:
    """Issue 16.1: recover() used to stop generation 1 and start the declared, broken generation 2."""
    before = _controller(workspace, controllers)
    _, second = _with_broken_update(before)
    pid = _serving_pid(before, second)
    stored = workspace[0].deployment("mnist", "blue")
    assert (stored.generation, stored.serving_generation) == (2, 1)
    assert "model file is corrupt" in str(stored.declared_failure)
    before.close(stop_deployments=False)  # a crash or `controlplane stop` of the control plane alone

    after = _controller(workspace, controllers)
    after.recover()
    record = workspace[0].deployment("mnist", "blue")
    assert after.status(record)["serving_generation"] == 1  # adopted at once, before anything else
    assert _serving_pid(after, record) == pid
    status = _failed_again(after, record)  # generation 2 is retried in the background, and fails again
    assert (status["serving_generation"], status["declared_generation"]) == (1, 2)
    assert "model file is corrupt" in str(status["error"])
    assert _serving_pid(after, record) == pid
    routes = json.loads((workspace[1] / "gateway" / "routes.json").read_text())
    assert routes["endpoints"]["mnist"]["deployments"]["blue"]["targets"]  # the gateway still routes to it


def test_after_a_reboot_the_generation_that_served_is_started_again_first(
    workspace: tuple[DeployState, Path], controllers: list[Controller]
) -> None:
    before = _controller(workspace, controllers)
    _with_broken_update(before)
    before.close(stop_deployments=True)  # nothing survives: a reboot
    controllers.remove(before)

    after = _controller(workspace, controllers)
    after.recover()
    record = workspace[0].deployment("mnist", "blue")
    status = _failed_again(after, record)
    assert (status["serving_generation"], status["declared_generation"]) == (1, 2)
    assert after.status(record)["instances"][0]["state"] == "ready"


def test_a_newer_update_supersedes_one_still_starting(
    workspace: tuple[DeployState, Path], controllers: list[Controller], tmp_path: Path
) -> None:
    """Issue 16.15: the older update used to keep starting (and its caller waiting) after a newer one won."""
    controller = _controller(workspace, controllers)
    controller.state.create_endpoint(EndpointSpec("mnist"))
    echo = DeploymentSpec(endpoint="mnist", name="blue", script=SCRIPTS / "echo.py", code_dir=SCRIPTS)
    first = controller.state.put_deployment(echo, create=True)
    controller.deploy(first)
    _settled(controller, first)
    slow = DeploymentSpec(
        endpoint="mnist",
        name="blue",
        script=SCRIPTS / "waits_in_init.py",
        code_dir=SCRIPTS,
        environment={"RELEASE_INIT": str(tmp_path / "never")},
    )
    second = controller.state.put_deployment(slow, create=False)
    controller.deploy(second)
    deadline = time.monotonic() + 30
    while controller.status(second)["starting_generation"] != 2:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    third = controller.state.put_deployment(echo, create=False)
    controller.deploy(third)
    status = _settled(controller, third)
    assert (status["state"], status["serving_generation"], status["declared_generation"]) == ("ready", 3, 3)
    assert status["error"] is None
    generation_2 = controller.backend.status(_handle(controller, 2))
    assert generation_2.state == "stopped"  # stopped at once, not left to finish its init()


def _handle(controller: Controller, generation: int) -> Generation:
    backend = controller.backend
    assert isinstance(backend, LocalBackend)
    return backend._generations[("mnist", "blue", generation)]
