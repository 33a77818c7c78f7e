"""The entry-script host on Ray Serve answers exactly as `scorehost serve` does, on a real Ray cluster."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from _ray_cluster import Cluster
from conftest import SCRIPTS, served

from scorehost.ray.serve_app import application

Deploy = Callable[..., str]
# Headers that belong to the answer (ours), as opposed to the front's own (date, server, ...).
ANSWER_HEADERS = ("content-type", "x-ms-run-function-failed", "x-ms-request-id", "x-request-id", "allow")
REQUESTS: list[tuple[str, str, dict[str, Any]]] = [
    ("POST", "/score", {"json": {"data": [[1, 2], [3, 4]]}}),
    ("POST", "/score", {"content": b'{"data": "text"}', "headers": {"x-request-id": "given-id-1"}}),
    ("POST", "/score", {"content": b"not json", "headers": {"content-type": "application/json"}}),
    ("POST", "/score", {"content": b'{"rows": [1]}'}),
    ("GET", "/score", {"params": {"data": "[1]"}}),
    ("GET", "/", {}),
    ("GET", "/ready", {}),
    ("GET", "/nowhere", {}),
    ("DELETE", "/score", {}),
]
ZOO = ["echo.py", "run_raises.py", "returns_numpy.py", "unserializable.py", "reads_data_key.py", "whole_body_frame.py"]


@pytest.fixture
def deploy(ray_cluster: Cluster) -> Iterator[Deploy]:
    """`deploy(script, name, **deployment_options)` runs an application and returns its base URL; it is deleted
    after the test."""
    from ray import serve

    names: list[str] = []

    def _deploy(script: str, name: str, **deployment: Any) -> str:
        options = {"entry_script": str(SCRIPTS / script)}
        deployment = {
            "num_replicas": 1,
            "ray_actor_options": {"num_cpus": 0.1},  # several replicas fit the cluster's 2 CPUs
            "graceful_shutdown_timeout_s": 2,  # Serve's default of 20 s would make each deletion that long
            "graceful_shutdown_wait_loop_s": 0.5,
            **deployment,
        }
        serve.run(application(options, deployment), name=name, route_prefix=f"/{name}")
        names.append(name)
        return f"http://127.0.0.1:{ray_cluster.http_port}/{name}"

    yield _deploy
    for name in names:
        # Not waited for: Serve takes ~30 s to report an app gone (its HAProxy front drains), and the cluster
        # is stopped at the end of the session anyway.
        serve.delete(name, _blocking=False)


def answer(client: httpx.Client, method: str, path: str, options: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
    response = client.request(method, path, **options)
    headers = {name: response.headers[name] for name in ANSWER_HEADERS if name in response.headers}
    if "x-request-id" not in options.get("headers", {}):  # made up per request: only its presence compares
        headers = {name: ("<made>" if name.endswith("request-id") else value) for name, value in headers.items()}
    return response.status_code, headers, response.content


@pytest.mark.parametrize("script", ZOO)
def test_answers_are_the_local_servers(deploy: Deploy, script: str) -> None:
    base = deploy(script, script.removesuffix(".py").replace("_", "-"))
    with served(script) as local, local.client() as direct, httpx.Client(base_url=base, timeout=30) as on_ray:
        for method, path, options in REQUESTS:
            expected = answer(direct, method, path, options)
            got = answer(on_ray, method, path, options)
            if "x-request-id" not in expected[1]:  # Serve's front puts one on every answer, as fronts do
                got[1].pop("x-request-id", None)
            assert got == expected, (method, path, options)


def test_replicas_share_the_load(deploy: Deploy) -> None:
    base = deploy("hangs.py", "two", num_replicas=2)
    pids: set[int] = set()
    deadline = time.monotonic() + 30
    with httpx.Client(base_url=base, timeout=30) as client:
        while len(pids) < 2:
            assert time.monotonic() < deadline, f"only {pids} answered"
            response = client.post("/score", json={"data": "ok"})
            assert response.status_code == 200, response.text
            pids.add(response.json()["pid"])


def test_a_replica_batches_concurrent_requests(deploy: Deploy) -> None:
    """run_batch() works in a replica as in a worker: requests that meet share a call, each keeps its answer."""
    from concurrent.futures import ThreadPoolExecutor

    base = deploy("batch_echo.py", "batching", max_ongoing_requests=16)  # Serve's default of 5 caps the batch
    with httpx.Client(base_url=base, timeout=30) as client, ThreadPoolExecutor(11) as pool:
        blocker = pool.submit(client.post, "/score", json={"data": {"sleep": 0.5}})
        time.sleep(0.25)
        replies = list(pool.map(lambda n: client.post("/score", json={"data": n}), range(10)))
        assert blocker.result().status_code == 200
    assert [reply.json()["echo"] for reply in replies] == list(range(10))
    assert max(reply.json()["batch"] for reply in replies) >= 5
