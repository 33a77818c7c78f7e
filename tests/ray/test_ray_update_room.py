"""Updates on a Ray cluster the deployment fills, under continuous load through the real gateway (the controller
in this process, as the control plane runs it, on the real Ray backend): the update rolls within the room (the
old generation shrinks as the new one grows, both taking traffic meanwhile) with no failed request; a new
generation that fails while both serve is stopped and the old one gets back its full size; an update that could
never fit is refused before anything is stored."""

from __future__ import annotations

import math
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from _ray_cluster import Cluster
from test_ray_controlplane import WHOAMI, Load

from scorehost.deploy.backends.base import Handle
from scorehost.deploy.backends.ray_serve import RayBackend
from scorehost.deploy.controlplane.controller import Controller
from scorehost.deploy.spec import AuthMode, DeploymentSpec, EndpointSpec, RayOptions
from scorehost.deploy.state import DeploymentRecord, DeployState
from scorehost.errors import DeploymentFailed, InvalidSpec
from scorehost.registry import database


class FailsToGrow(RayBackend):
    """The real Ray backend, except that generation `failing` fails while it grows to two replicas, as one whose
    later replicas crash would (Serve takes a minute of retries to give up on those)."""

    failing: int | None = None

    def wait_resized(self, handle: Handle, instances: int, timeout: float, cancelled: Callable[[], bool]) -> None:
        if handle.generation == self.failing and instances == 2:
            time.sleep(1)  # serving beside the old generation meanwhile
            raise DeploymentFailed(f"generation {handle.generation} cannot grow: its second replica crashed")
        super().wait_resized(handle, instances, timeout, cancelled)


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    home = tmp_path / "home"
    command = [sys.executable, "-m", "scorehost", "gateway", "--home", str(home), "--port", "0"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert process.stdout is not None
    line = process.stdout.readline()
    match = re.search(r"listening on (http://\S+)", line)
    assert match, line
    yield home, match.group(1)
    process.terminate()
    process.wait(10)
    process.stdout.close()


def _free_cpus(timeout: float = 60) -> float:
    """The cluster's CPUs, once other tests' replicas have drained (bounded: what is free then)."""
    import ray

    deadline = time.monotonic() + timeout
    while True:
        total, free = ray.cluster_resources()["CPU"], ray.available_resources().get("CPU", 0.0)
        if free >= total - 1e-6 or time.monotonic() > deadline:
            return float(free)
        time.sleep(0.5)


def _replicas(app: str) -> dict[str, int] | None:
    """The replicas of a Serve application by state; None when it is gone or being deleted."""
    from ray import serve

    found = serve.status().applications.get(app)
    if found is None or str(found.status).endswith("DELETING"):
        return None
    states = found.deployments["ScoreHost"].replica_states
    return {str(state).rsplit(".", 1)[-1]: count for state, count in states.items() if count}


def _wait_replicas(app: str, wanted: dict[str, int] | None, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while (seen := _replicas(app)) != wanted:
        assert time.monotonic() < deadline, f"{app}: {seen}, not {wanted}"
        time.sleep(0.25)


def _settled(controller: Controller, record: DeploymentRecord, timeout: float = 90) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    while (status := controller.status(record))["state"] in ("starting", "updating"):
        assert time.monotonic() < deadline, status
        time.sleep(0.1)
    return status


@pytest.mark.timeout(300)
def test_an_update_rolls_within_a_cluster_its_deployment_fills(
    ray_cluster: Cluster, gateway: tuple[Path, str], tmp_path: Path
) -> None:
    cpus = math.floor(_free_cpus() / 2 * 100) / 100  # two replicas fill the cluster: no room for a third
    home, url = gateway
    engine = database.connect(f"sqlite:///{tmp_path / 'registry.db'}")
    backend = FailsToGrow(ray_cluster.address, home=home)
    controller = Controller(DeployState(engine), backend, home, ready_timeout=90, drain_seconds=1)
    controller.watch(0.25)  # the routes follow what Serve reports, as the control plane keeps them
    state = controller.state

    def update(name: str, instances: int, num_cpus: float, *, create: bool = False) -> DeploymentRecord:
        ray = RayOptions(ray_cluster.address, ray_cluster.ingress, num_cpus=num_cpus, graceful_shutdown_s=1)
        spec = DeploymentSpec("mnist", "blue", WHOAMI / "score.py", WHOAMI, instances=instances,
                              environment={"DEPLOYMENT_NAME": name}, backend="ray", ray=ray)  # fmt: skip
        record = state.put_deployment(controller.prepare(spec), create=create)
        controller.deploy(record)
        return record

    try:
        state.create_endpoint(EndpointSpec("mnist", auth=AuthMode.NONE))
        assert _settled(controller, update("v1", 2, cpus, create=True))["state"] == "ready"
        with Load(f"{url}/endpoints/mnist/score") as load:
            load.wait_for("v1")
            status = _settled(controller, update("v2", 2, cpus))
            assert (status["state"], status["serving_generation"], status["error"]) == ("ready", 2, None)
            assert _replicas("mnist.blue.2") == {"RUNNING": 2}  # ready means at its full size
            load.wait_for("v2")
            _wait_replicas("mnist.blue.1", None)

            # Half-size replicas: generation 3 serves beside generation 2 with one, then fails growing to two.
            backend.failing = 3
            status = _settled(controller, update("v3", 2, cpus / 2))
            assert (status["state"], status["serving_generation"]) == ("ready", 2)
            assert "generation 3 cannot grow: its second replica crashed" in str(status["error"])
            _wait_replicas("mnist.blue.3", None)
            _wait_replicas("mnist.blue.2", {"RUNNING": 2})  # its full size again
            load.wait_for("v2")
        assert load.failures == []
        assert load.seen["v3"] > 0  # it took traffic beside generation 2 before it failed

        # One replica of twice the CPUs cannot start beside the last one of the serving generation: refused.
        with pytest.raises(InvalidSpec) as refused:
            update("v4", 1, 2 * cpus)
        assert "mnist/blue cannot be updated without a gap in serving" in str(refused.value)
        assert state.deployment("mnist", "blue").generation == 3  # nothing stored
    finally:
        controller.close(stop_deployments=True)
        engine.dispose()
        for generation in (1, 2, 3):  # the next tests need the cluster's CPUs back
            _wait_replicas(f"mnist.blue.{generation}", None)
