"""The controller with the real local backend and a real SQLite state: a generation whose backend fails in a way
no backend is meant to (a library's bug) fails with the reason, and the controller goes on rolling."""

from __future__ import annotations

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
