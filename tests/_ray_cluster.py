"""The `ray_cluster` fixture (registered by tests/conftest.py): one Ray cluster for the whole `-m ray`
session, `scorehost.ray.localcluster`'s head node: high-throughput mode (HAProxy ingress), token
authentication on, as docs/ray.md tells users to run it.

CI runs these tests inside a private network namespace (`unshare --net`, .ci/run), because Ray binds
some ports on every interface whatever it is told.
"""

from __future__ import annotations

import importlib.util
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

HEAD_PORT = 26379
REQUEST_TIMEOUT_S = 8  # Serve's own deadline (408), cluster-wide: short, for the test of it


@dataclass(frozen=True)
class Cluster:
    address: str  # HOST:PORT of the head's GCS
    http_port: int  # where Serve's ingress listens
    local: Any  # the LocalCluster, for local_node()

    @property
    def ingress(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def ray_installed() -> bool:
    """Whether Ray itself is importable. `find_spec("ray")` alone is not enough: tests/, on sys.path, holds a
    folder `ray` that it finds as a namespace package, with no origin, where Ray is absent."""
    spec = importlib.util.find_spec("ray")
    return spec is not None and spec.origin is not None


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[Cluster]:
    """A head node with 2 CPUs on 127.0.0.1, Serve started on a free port; stopped after the session."""
    if not ray_installed():
        pytest.fail("the -m ray tests need Ray Serve: pip install -e '.[test,ray]'")
    from scorehost.ray.localcluster import local_cluster

    # Serve reports replicas it cannot place after 30 s by default: 3 s keeps that test short.
    environment = {
        "RAY_SERVE_SLOW_STARTUP_WARNING_S": "3",
        "RAY_SERVE_SLOW_STARTUP_WARNING_PERIOD_S": "1",
        # A stopping replica keeps its port open 30 s by default, for load balancers in front of direct ingress to
        # notice; nothing here needs that, and every test's clean-up would wait it out.
        "RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S": "1",
    }
    with local_cluster(HEAD_PORT, num_cpus=2, environment=environment) as cluster:
        # Imported only now: Ray reads its authentication settings from the environment when first imported.
        import ray
        from ray import serve

        ray.init(address=cluster.address, log_to_driver=False)
        try:
            http_port = _free_port()
            # The ingress on the head only: a second node on this machine would ask for the same port.
            http_options = {"host": "127.0.0.1", "port": http_port, "request_timeout_s": REQUEST_TIMEOUT_S}
            serve.start(proxy_location="HeadOnly", http_options=http_options)
            yield Cluster(cluster.address, http_port, cluster)
        finally:
            ray.shutdown()
