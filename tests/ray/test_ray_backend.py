"""The Ray backend on a real cluster: generations as Serve applications, reached through the real gateway;
registered models verified on the nodes; Serve's queue limit (503) and deadline (408); a replica whose run()
hangs replaced; replicas on two nodes."""

from __future__ import annotations

import json
import re
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from _ray_cluster import REQUEST_TIMEOUT_S, Cluster
from conftest import SCRIPTS

from scorehost import Registry
from scorehost.deploy.backends.base import DeploymentRecord, InstanceState
from scorehost.deploy.backends.ray_serve import RayBackend, RayGeneration
from scorehost.deploy.gateway import routes_path, write_routes
from scorehost.deploy.spec import DeploymentSpec, RayOptions
from scorehost.errors import DeploymentFailed, InvalidSpec
from scorehost.registry.store import blob_path

KEY = "ray-backend-test-key-0123456789abcdefghijklmnop"


@pytest.fixture
def backend(ray_cluster: Cluster, tmp_path: Path) -> Iterator[RayBackend]:
    made = RayBackend(ray_cluster.address, home=tmp_path / "home")
    yield made
    made.close()  # connected by the session: stays connected


def spec(
    cluster: Cluster, script: str, deployment: str, instances: int = 1, models: tuple[str, ...] = (), **ray: Any
) -> DeploymentSpec:
    options = {"num_cpus": 0.1, "graceful_shutdown_s": 1, "ingress": cluster.ingress, **ray}
    return DeploymentSpec(
        endpoint="mnist",
        name=deployment,
        script=SCRIPTS / script,
        code_dir=SCRIPTS,
        instances=instances,
        environment={"GREETING": "hello"},
        serve_options={"timeout": 30},
        models=models,
        backend="ray",
        ray=RayOptions(cluster.address, **options),
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


def _stopped(backend: RayBackend, handle: RayGeneration) -> None:
    """Stop and wait until Serve has removed the app: its replicas' CPUs are free for the next test (stop()
    itself returns once Serve takes the app off, while its replicas still drain)."""
    from ray import serve

    backend.stop(handle, drain_seconds=1)
    deadline = time.monotonic() + 60
    while handle.app_name in serve.status().applications:
        assert time.monotonic() < deadline, f"{handle.app_name} was never removed"
        time.sleep(0.25)


def _started(backend: RayBackend, deployment: DeploymentSpec) -> RayGeneration:
    handle = backend.start(deployment, 1)
    backend.wait_ready(handle, 90)
    return handle


def test_a_generation_serves_through_the_gateway_and_stops(
    backend: RayBackend, ray_cluster: Cluster, gateway: tuple[Path, str]
) -> None:
    handle = _started(backend, spec(ray_cluster, "echo.py", "blue", instances=2))
    [target] = backend.targets(handle)
    assert target == f"{ray_cluster.ingress}/mnist/blue/1"
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
    assert record.data["address"] == ray_cluster.address  # a restarted control plane connects there again
    assert backend.adopt(record) == handle  # found again after a control-plane restart
    backend.stop(handle, drain_seconds=2)
    assert backend.targets(handle) == []
    assert backend.status(handle).state is InstanceState.STOPPED
    assert backend.adopt(record) is None


def test_a_script_that_cannot_start_is_reported_with_its_error(backend: RayBackend, ray_cluster: Cluster) -> None:
    handle = backend.start(spec(ray_cluster, "init_fails.py", "broken"), 1)
    with pytest.raises(DeploymentFailed) as failed:
        backend.wait_ready(handle, 120)
    assert "model file is corrupt" in failed.value.cause  # the script's own message, from the replica
    assert backend.status(handle).state is InstanceState.FAILED
    assert backend.targets(handle) == []
    backend.stop(handle, drain_seconds=1)


def test_replicas_the_cluster_has_no_room_for_are_refused(backend: RayBackend, ray_cluster: Cluster) -> None:
    """Ray would leave them pending without a word: more CPUs or GPUs than the cluster has in all are refused at
    once."""
    with pytest.raises(InvalidSpec) as refused:
        backend.start(spec(ray_cluster, "echo.py", "greedy", instances=2, num_cpus=2), 1)  # the cluster has 2
    assert "the cluster has no room for the replicas of mnist/greedy: 2 x 2 CPU need 4 CPUs" in str(refused.value)
    import ray
    from ray import serve

    assert "mnist.greedy.1" not in serve.status().applications
    gpus = ray.cluster_resources().get("GPU", 0.0) + 1  # one more than it has: none, on a CPU-only machine
    with pytest.raises(InvalidSpec) as refused:
        backend.start(spec(ray_cluster, "echo.py", "gpu-hungry", num_gpus=gpus), 1)
    assert f"mnist/gpu-hungry: 1 x {gpus:g} GPU need {gpus:g} GPUs, and the cluster has {gpus - 1:g}" in str(
        refused.value
    )
    assert "mnist.gpu-hungry.1" not in serve.status().applications


def test_replicas_waiting_for_cpus_others_hold_fail_after_the_grace(ray_cluster: Cluster, tmp_path: Path) -> None:
    impatient = RayBackend(ray_cluster.address, home=tmp_path / "home", pending_grace=2)
    first = _started(impatient, spec(ray_cluster, "echo.py", "holder", num_cpus=1.5))
    try:
        second = impatient.start(spec(ray_cluster, "echo.py", "waiter", num_cpus=1.5), 1)  # fits, but not beside it
        try:
            with pytest.raises(DeploymentFailed) as failed:
                impatient.wait_ready(second, 90)
            assert "the cluster has no free room for its replicas" in str(failed.value)
            assert "CPU" in failed.value.cause
        finally:
            _stopped(impatient, second)
    finally:
        _stopped(impatient, first)


def _register_multi(home: Path, source: Path, labels: tuple[str, ...] = ("neg", "pos")) -> None:
    """labels:1 and encoder:1 and 2, as tests/scripts/registered_multi.py reads them. Nodes keep verified copies by
    content, so a test that needs a fresh copy registers labels of its own."""
    (source / "encoder" / "weights").mkdir(parents=True)
    (source / "labels.json").write_text(json.dumps({"labels": list(labels)}))
    (source / "encoder" / "vocab.json").write_text(json.dumps({"good": 3, "bad": 2}))
    (source / "encoder" / "weights" / "scale.txt").write_text("0.5")
    with Registry(home) as registry:
        registry.register("labels", source / "labels.json")
        registry.register("encoder", source / "encoder")
        registry.register("encoder", source / "encoder", description="version 2, same files")


def test_registered_models_are_served_after_verification_on_the_node(
    backend: RayBackend, ray_cluster: Cluster, tmp_path: Path
) -> None:
    _register_multi(tmp_path / "home", tmp_path / "source")
    handle = _started(backend, spec(ray_cluster, "registered_multi.py", "models", models=("labels:1", "encoder:2")))
    try:
        reply = httpx.post(backend.targets(handle)[0] + "/score", json={"data": ["good", "bad"]}, timeout=30)
        assert reply.status_code == 200, reply.text
        assert reply.json() == [
            {"word": "good", "label": "pos", "score": 1.5},
            {"word": "bad", "label": "neg", "score": 1.0},
        ]
    finally:
        backend.stop(handle, drain_seconds=1)


def test_a_model_damaged_in_the_store_fails_the_deployment(
    backend: RayBackend, ray_cluster: Cluster, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    _register_multi(home, tmp_path / "source", labels=(secrets.token_hex(8),))
    with Registry(home) as registry:
        [stored] = registry.files("labels:1")
        blob = blob_path(registry.store.root, stored.digest)
    blob.chmod(0o644)
    blob.write_text(blob.read_text().replace('"', "'"))  # same size, other bytes
    handle = backend.start(spec(ray_cluster, "registered_multi.py", "damaged", models=("labels:1", "encoder:2")), 1)
    try:
        with pytest.raises(DeploymentFailed) as failed:
            backend.wait_ready(handle, 120)
        assert "labels:1 labels.json arrived damaged on node" in failed.value.cause
    finally:
        backend.stop(handle, drain_seconds=1)


def test_a_full_queue_answers_503_and_serves_deadline_answers_408(backend: RayBackend, ray_cluster: Cluster) -> None:
    handle = _started(backend, spec(ray_cluster, "slow.py", "queue", max_ongoing=1, max_queued=1))
    url = backend.targets(handle)[0] + "/score"
    try:
        with ThreadPoolExecutor(6) as pool:
            began = time.monotonic()
            replies = list(pool.map(lambda _: httpx.post(url, json={"data": 1.5}, timeout=30), range(6)))
        codes = sorted(reply.status_code for reply in replies)
        assert codes.count(200) >= 2, codes  # one running, one queued...
        assert codes.count(503) >= 3, codes  # ...the rest refused
        assert set(codes) <= {200, 503}
        quick = [reply for reply in replies if reply.status_code == 503]
        assert all(reply.elapsed.total_seconds() < 1.0 for reply in quick)  # refused at once, not after waiting
        assert time.monotonic() - began < 10

        # Serve's cluster-wide request_timeout_s passes before this run() returns (the host's own is 30 s).
        slow = httpx.post(url, json={"data": REQUEST_TIMEOUT_S + 3}, timeout=30)
        assert slow.status_code == 408, slow.text
        assert REQUEST_TIMEOUT_S - 0.5 < slow.elapsed.total_seconds() < REQUEST_TIMEOUT_S + 2.5
    finally:
        _stopped(backend, handle)


def test_a_replica_whose_run_hangs_is_replaced(backend: RayBackend, ray_cluster: Cluster) -> None:
    deployment = spec(ray_cluster, "hangs.py", "hangs", health_check_s=1)
    deployment = DeploymentSpec.from_json({**deployment.to_json(), "serve_options": {"timeout": 2}})
    handle = _started(backend, deployment)
    url = backend.targets(handle)[0] + "/score"
    try:
        first = httpx.post(url, json={"data": 0}, timeout=30).json()["pid"]
        hung = httpx.post(url, json={"data": "hang"}, timeout=30)
        # run() blocks in C, where the host's deadline cannot interrupt it: Serve's own deadline answers.
        assert hung.status_code == 408, hung.text
        deadline = time.monotonic() + 90
        while True:  # Serve's health checks fail, it starts a replacement and routes to it
            reply = httpx.post(url, json={"data": 0}, timeout=30)
            if reply.status_code == 200 and reply.json()["pid"] != first:
                break
            assert time.monotonic() < deadline, f"the stuck replica was never replaced: {reply.status_code}"
            time.sleep(0.5)
    finally:
        backend.stop(handle, drain_seconds=1)


def test_replicas_spread_over_two_nodes(backend: RayBackend, ray_cluster: Cluster) -> None:
    import ray

    from scorehost.ray.localcluster import local_node

    with local_node(ray_cluster.local, num_cpus=2):
        # Three replicas of one CPU each: the head has two CPUs, so at least one lands on the new node.
        handle = _started(backend, spec(ray_cluster, "ray_node.py", "spread", instances=3, num_cpus=1))
        try:
            url = backend.targets(handle)[0] + "/score"
            alive = {node["NodeID"] for node in ray.nodes() if node["Alive"]}
            assert len(alive) == 2
            nodes: set[str] = set()
            deadline = time.monotonic() + 30  # Serve's HAProxy learns of new replicas on its next reload
            with httpx.Client(timeout=30) as client:
                while nodes != alive and time.monotonic() < deadline:
                    nodes.add(client.post(url, json={"data": 0}).json()["node"])
            assert nodes == alive  # both nodes answer, through the head's one ingress
        finally:
            _stopped(backend, handle)  # before the node goes: the next tests need the head's CPUs back
