"""The Ray backend on a real cluster: generations as Serve applications, reached through the real gateway."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from _ray_cluster import Cluster
from conftest import SCRIPTS

from scorehost.deploy.backends.base import DeploymentRecord, InstanceState
from scorehost.deploy.backends.ray_serve import RayBackend
from scorehost.deploy.gateway import routes_path, write_routes
from scorehost.deploy.spec import DeploymentSpec
from scorehost.errors import DeploymentFailed

KEY = "ray-backend-test-key-0123456789abcdefghijklmnop"


@pytest.fixture
def backend(ray_cluster: Cluster) -> Iterator[RayBackend]:
    made = RayBackend(ingress=f"http://127.0.0.1:{ray_cluster.http_port}", replica_cpus=0.1)
    yield made
    made.close()  # connected by the session: stays connected


def spec(script: str, deployment: str, instances: int = 1) -> DeploymentSpec:
    return DeploymentSpec(
        endpoint="mnist",
        name=deployment,
        script=SCRIPTS / script,
        code_dir=SCRIPTS,
        instances=instances,
        environment={"GREETING": "hello"},
        serve_options={"timeout": 30},
    )


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    command = [sys.executable, "-m", "scorehost", "gateway", "--home", str(tmp_path), "--port", "0"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert process.stdout is not None
    line = process.stdout.readline()
    match = re.search(r"listening on (http://\S+)", line)
    assert match, line
    yield tmp_path, match.group(1)
    process.terminate()
    process.wait(10)
    process.stdout.close()


def test_a_generation_serves_through_the_gateway_and_stops(backend: RayBackend, gateway: tuple[Path, str]) -> None:
    handle = backend.start(spec("echo.py", "blue", instances=2), 1)
    backend.wait_ready(handle, 90)
    [target] = backend.targets(handle)
    assert target.endswith("/mnist/blue/1")
    status = backend.status(handle)
    assert status.state is InstanceState.READY
    assert [instance.state for instance in status.instances] == [InstanceState.READY] * 2

    home, url = gateway
    endpoint = {"auth": "key", "keys": [KEY], "deployments": {"blue": {"weight": 100, "targets": [target]}}}
    write_routes(routes_path(home), {"version": 1, "endpoints": {"mnist": endpoint}})
    time.sleep(0.2)  # past the gateway's reload check
    with httpx.Client(base_url=url, timeout=30) as client:
        reply = client.post("/endpoints/mnist/score", json={"data": [1, 2]}, headers={"Authorization": f"Bearer {KEY}"})
        assert reply.status_code == 200, reply.text
        assert reply.json() == {"received": "[1,2]"}
        assert client.post("/endpoints/mnist/score", json={"data": 1}).status_code == 401  # keys: the gateway's

    record = DeploymentRecord.from_json(handle.record().to_json())
    assert backend.adopt(record) == handle  # found again after a control-plane restart
    backend.stop(handle, drain_seconds=2)
    assert backend.targets(handle) == []
    assert backend.status(handle).state is InstanceState.STOPPED
    assert backend.adopt(record) is None


def test_a_script_that_cannot_start_is_reported_with_its_error(backend: RayBackend) -> None:
    handle = backend.start(spec("init_fails.py", "broken"), 1)
    with pytest.raises(DeploymentFailed) as failed:
        backend.wait_ready(handle, 120)
    assert "model file is corrupt" in failed.value.cause  # the script's own message, from the replica
    assert backend.status(handle).state is InstanceState.FAILED
    assert backend.targets(handle) == []
    backend.stop(handle, drain_seconds=1)


def test_replicas_the_cluster_has_no_room_for_are_reported(ray_cluster: Cluster) -> None:
    """Ray leaves such replicas pending without a word: the backend says so instead of waiting blind."""
    greedy = RayBackend(ingress=f"http://127.0.0.1:{ray_cluster.http_port}", replica_cpus=4)  # the cluster has 2
    handle = greedy.start(spec("echo.py", "greedy"), 1)
    try:
        with pytest.raises(DeploymentFailed) as failed:
            greedy.wait_ready(handle, 60)
        assert "the cluster has no room for its replicas" in str(failed.value)
        assert "CPU" in failed.value.cause
    finally:
        greedy.stop(handle, drain_seconds=1)
