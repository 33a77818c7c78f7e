"""Each worker of a local deployment is one instance (issue 19: `--instances 2` showed one), from serve's worker
report; and the controller shows the generation an update waits for, with its log."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from scorehost.deploy.backends import LocalBackend
from scorehost.deploy.backends.local_generation import Generation
from scorehost.deploy.controlplane.controller import Controller
from scorehost.deploy.spec import DeploymentSpec, EndpointSpec
from scorehost.deploy.state import DeployState
from scorehost.errors import UnknownResource
from scorehost.registry import database
from scorehost.telemetry.worker_report import WorkerReport, read_worker_report

SCRIPTS = Path(__file__).parents[1] / "scripts"

pytestmark = pytest.mark.timeout(120)


def _spec(script: str, **fields: Any) -> DeploymentSpec:
    return DeploymentSpec(endpoint="mnist", name="blue", script=SCRIPTS / script, code_dir=SCRIPTS, **fields)


def _until(condition: Callable[[], Any], timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while not (found := condition()):
        assert time.monotonic() < deadline, "condition never became true"
        time.sleep(0.05)
    return found


def _parent(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def test_the_report_names_its_writer_and_each_worker(tmp_path: Path) -> None:
    path = tmp_path / "workers.json"
    report = WorkerReport(str(path), 2)
    report.started(1, 101)
    report.started(2, 102)
    report.ready(1)
    report.died(2, "was killed by SIGKILL")
    workers = read_worker_report(path, os.getpid())
    assert workers is not None
    assert [(w["index"], w["pid"], w["state"], w["restarts"]) for w in workers] == [
        (1, 101, "ready", 0),
        (2, None, "restarting", 1),
    ]
    assert workers[1]["last_error"] == "was killed by SIGKILL"
    assert read_worker_report(path, os.getpid() + 1) is None  # left by another process: not this one's workers
    assert read_worker_report(tmp_path / "missing.json", os.getpid()) is None
    WorkerReport(None, 1).started(1, 5)  # no path: nothing written, nothing raised


@pytest.fixture
def backend() -> Iterator[LocalBackend]:
    made = LocalBackend(Path(os.environ["SCOREHOST_HOME"]))
    yield made
    for generation in list(made._generations.values()):
        generation.stop(0)


def test_each_worker_is_an_instance_with_its_own_restarts(backend: LocalBackend) -> None:
    handle = backend.start(_spec("echo.py", instances=2), 1)
    assert isinstance(handle, Generation)
    backend.wait_ready(handle, 60)
    _until(lambda: all(i.state == "ready" for i in backend.status(handle).instances))
    instances = backend.status(handle).instances
    assert [i.name for i in instances] == ["blue-1-1", "blue-1-2"]
    pids = [i.pid for i in instances]
    assert None not in pids
    assert len(set(pids)) == 2
    serve = {_parent(pid) for pid in pids if pid is not None}
    assert len(serve) == 1  # both forked by the one serve process, which is not an instance itself

    assert pids[1] is not None
    os.kill(pids[1], signal.SIGKILL)  # serve replaces the worker itself: only that instance counts a restart
    after = _until(lambda: (s := backend.status(handle).instances)[1].restarts == 1 and s[1].state == "ready" and s)
    assert (after[0].pid, after[0].restarts, after[0].last_error) == (pids[0], 0, None)
    assert after[1].pid not in (None, pids[1])
    assert "SIGKILL" in (after[1].last_error or "")
    assert backend.status(handle).state == "ready"


@pytest.fixture
def controller(tmp_path: Path) -> Iterator[Controller]:
    home = Path(os.environ["SCOREHOST_HOME"])
    engine = database.connect(f"sqlite:///{tmp_path / 'registry.db'}")
    made = Controller(DeployState(engine), LocalBackend(home), home, ready_timeout=60, drain_seconds=1)
    yield made
    made.close(stop_deployments=True)
    engine.dispose()


def test_an_update_shows_the_generation_it_starts_and_its_log(controller: Controller, tmp_path: Path) -> None:
    controller.state.create_endpoint(EndpointSpec("mnist"))
    first = controller.state.put_deployment(_spec("echo.py"), create=True)
    controller.deploy(first)
    _until(lambda: controller.status(first)["state"] == "ready")
    release = tmp_path / "release"
    slow = _spec("waits_in_init.py", instances=2, environment={"RELEASE_INIT": str(release)})
    second = controller.state.put_deployment(slow, create=False)
    controller.deploy(second)
    status = _until(lambda: (s := controller.status(second))["starting_generation"] == 2 and s)
    assert (status["state"], status["serving_generation"], status["generation"]) == ("updating", 1, 1)
    assert [i["state"] for i in status["instances"]] == ["ready"]  # generation 1's: it serves meanwhile
    assert len(status["starting_instances"]) == 2
    assert {i["state"] for i in status["starting_instances"]} == {"starting"}
    banner = _until(lambda: [line for line in controller.logs(second, 100, generation=2) if "waits_in_init" in line])
    assert "serving" in banner[0]
    assert not [line for line in controller.logs(second, 100, generation=1) if "waits_in_init" in line]
    with pytest.raises(UnknownResource, match="generation 5 has no log here"):
        controller.logs(second, 10, generation=5)

    release.touch()
    done = _until(lambda: (s := controller.status(second))["state"] == "ready" and s["serving_generation"] == 2 and s)
    assert (done["starting_generation"], done["starting_instances"]) == (None, [])
    assert len(done["instances"]) == 2
