"""A real control-plane API server on a free port, with a deployer that records what it is asked.

Starting processes is the controller's and backend's job, tested on their own; here HTTP, JSON and
SQLite are real.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from werkzeug.serving import make_server

from scorehost.client import ControlPlaneAddress
from scorehost.deploy.controlplane.api import ControlPlaneApp
from scorehost.deploy.spec import DeploymentSpec
from scorehost.deploy.state import DeploymentRecord, DeployState
from scorehost.registry import database

TOKEN = "test-token-0123456789"
GATEWAY = "http://127.0.0.1:5080"


def wait_deployment_ready(client: Any, endpoint: str, name: str, timeout: float = 120) -> None:
    """Wait until a real control plane says the deployment is ready (a failed one fails the test at once)."""
    deadline = time.monotonic() + timeout
    while (status := client.get_deployment(endpoint, name)["status"]).get("state") != "ready":
        assert status.get("state") != "failed", status
        assert time.monotonic() < deadline, status
        time.sleep(0.1)


def free_port() -> int:
    """A TCP port nobody listens on at the moment (for a gateway, which needs a fixed one)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class RecordingDeployer:
    """Answers status and logs, and remembers every deploy/retire/routes call."""

    def __init__(self, folder: Path | None = None) -> None:
        self.calls: list[tuple[str, str]] = []
        self.folder = folder or Path("/nonexistent")

    def collected(self, endpoint: str, deployment: str) -> Path:
        return self.folder / "collected" / endpoint / deployment

    def prepare(self, spec: DeploymentSpec) -> DeploymentSpec:
        return spec

    def deploy(self, record: DeploymentRecord) -> None:
        self.calls.append(("deploy", f"{record.spec.name}@{record.generation}"))

    def retire(self, record: DeploymentRecord) -> None:
        self.calls.append(("retire", record.spec.name))

    def status(self, record: DeploymentRecord) -> dict[str, Any]:
        return {"state": "ready"}

    def logs(
        self, record: DeploymentRecord, lines: int, follow: bool = False, generation: int | None = None
    ) -> Iterable[str]:
        yield from (f"line {index}" for index in range(lines))
        if follow:
            yield "followed"

    def routes_changed(self) -> None:
        self.calls.append(("routes", ""))


@contextmanager
def api_server(folder: Path, gateway: str = GATEWAY) -> Iterator[tuple[ControlPlaneAddress, RecordingDeployer]]:
    """Serve the API on 127.0.0.1 (a free port) over a SQLite file in `folder`."""
    engine = database.connect(f"sqlite:///{folder / 'registry.db'}")
    deployer = RecordingDeployer(folder)
    app = ControlPlaneApp(DeployState(engine), deployer, TOKEN, gateway, home=folder)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield ControlPlaneAddress(f"http://127.0.0.1:{server.server_port}", gateway, TOKEN), deployer
    finally:
        server.shutdown()
        thread.join()
        engine.dispose()
