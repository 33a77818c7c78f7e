"""The `ray_cluster` fixture (registered by tests/conftest.py): one Ray cluster for the whole `-m ray`
session. A real head node started with `ray start`, in high-throughput mode (HAProxy ingress), token
authentication on, as docs/ray.md tells users to run it.

CI runs these tests inside a private network namespace (`unshare --net`, .ci/run), because Ray binds
some ports on every interface whatever it is told.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

HEAD_PORT = 26379  # outside 10002-19999, Ray's default worker port range
RAY_ENVIRONMENT = {
    "RAY_SERVE_ENABLE_HA_PROXY": "1",
    "RAY_SERVE_THROUGHPUT_OPTIMIZED": "1",
    "RAY_AUTH_MODE": "token",
    "RAY_USAGE_STATS_ENABLED": "0",
}


@dataclass(frozen=True)
class Cluster:
    address: str  # HOST:PORT of the head's GCS
    http_port: int  # where Serve's ingress listens


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_for_port(port: int, process: subprocess.Popen[str], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"ray start exited with {process.returncode}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise AssertionError(f"Ray's head did not listen on {port} within {timeout:.0f} s")


def _stop(process: subprocess.Popen[str]) -> None:
    """Stop this cluster only (`ray stop` would stop every Ray cluster of this machine, a developer's own too):
    `ray start --block` ends the processes it started when it is told to stop."""
    for sig, grace in ((signal.SIGTERM, 30.0), (signal.SIGKILL, 10.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        try:
            process.wait(grace)
            return
        except subprocess.TimeoutExpired:
            continue


@pytest.fixture(scope="session")
def ray_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """A head node with 2 CPUs on 127.0.0.1, Serve started on a free port; stopped after the session."""
    if importlib.util.find_spec("ray") is None:
        pytest.fail("the -m ray tests need Ray Serve: pip install -e '.[test,ray]'")
    saved = dict(os.environ)
    temp = tmp_path_factory.mktemp("ray")
    token = temp / "auth_token"  # not ~/.ray/auth_token: the developer's own clusters keep theirs
    token.write_text(secrets.token_hex(32))
    token.chmod(0o600)
    os.environ.update(RAY_ENVIRONMENT, RAY_AUTH_TOKEN_PATH=str(token))
    environment = dict(os.environ)
    command = [str(Path(sys.executable).with_name("ray")), "start", "--head", "--block"]
    command += ["--node-ip-address=127.0.0.1", f"--port={HEAD_PORT}", "--num-cpus=2", "--include-dashboard=false"]
    command += ["--disable-usage-stats", f"--temp-dir={temp}"]
    log = (temp / "ray-start.log").open("w")
    head = subprocess.Popen(
        command, env=environment, stdout=log, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    try:
        _wait_for_port(HEAD_PORT, head)
        # Imported only now: Ray reads its authentication settings from the environment when first imported.
        import ray
        from ray import serve

        address = f"127.0.0.1:{HEAD_PORT}"
        ray.init(address=address, log_to_driver=False)
        try:
            http_port = _free_port()
            serve.start(http_options={"host": "127.0.0.1", "port": http_port})
            yield Cluster(address, http_port)
        finally:
            ray.shutdown()
    finally:
        _stop(head)
        log.close()
        os.environ.clear()
        os.environ.update(saved)
        shutil.rmtree(temp, ignore_errors=True)
