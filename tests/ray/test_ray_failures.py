"""What users see when things fail on Ray: a script whose init() raises says why, as on local processes (the
CLI's error and traceback, `deployments show`, `deployments logs`); a request lost with a replica killed under it,
and Serve's 503 for a full queue, come back through the gateway as the gateway's own JSON answers; the replica
put in its place is counted as a restart, each replica an instance of its own name."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
import test_ray_backend
import test_ray_controlplane
from _ray_cluster import Cluster
from conftest import SCRIPTS
from test_ray_backend import spec

from scorehost.deploy.backends.base import InstanceState
from scorehost.deploy.backends.ray_serve import RayBackend
from scorehost.deploy.gateway import routes_path, write_routes

# The fixtures of the neighbouring modules, shared: a backend on the session cluster, a gateway, a workspace.
backend, gateway, home = test_ray_backend.backend, test_ray_backend.gateway, test_ray_controlplane.home
CORRUPT = "init() in init_fails.py raised RuntimeError: model file is corrupt"


def scorehost(home: Path, *args: str, code: int = 0) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-m", "scorehost", *args, "--home", str(home)],
        capture_output=True,
        text=True,
        env=os.environ.copy(),  # the cluster's token file
        timeout=180,
    )
    assert done.returncode == code, f"{args}: exit {done.returncode}\n{done.stdout}{done.stderr}"
    return done


@pytest.mark.timeout(240)  # the session's cluster may start in it, on a busy machine
def test_a_script_whose_init_fails_says_why_as_on_local_processes(
    ray_cluster: Cluster,
    home: Path,
) -> None:
    scorehost(
        home, "controlplane", "start", "--api-port", "0", "--gateway-port", str(test_ray_controlplane._free_port())
    )
    scorehost(home, "endpoints", "create", "broken", "--auth", "none")
    on_ray = ["--backend", "ray", "--ray-address", ray_cluster.address, "--ray-ingress", ray_cluster.ingress]
    script = ["--script", str(SCRIPTS / "init_fails.py"), "--num-cpus", "0.1"]
    failed = scorehost(home, "deployments", "create", "broken", "blue", *script, *on_ray, code=1)
    lines = failed.stderr.splitlines()
    assert '      raise RuntimeError("model file is corrupt")' in lines, lines  # the script's traceback, indented
    assert "  RuntimeError: model file is corrupt" in lines
    *_, reason, where = lines
    assert reason == f"Error: broken/blue generation 1 cannot start on Ray: {CORRUPT}"
    assert where == "the full log: `scorehost deployments logs broken blue --generation 1`"
    assert "\x1b" not in failed.stderr  # none of Ray's colours and frames
    assert "ray::" not in failed.stderr

    shown = json.loads(scorehost(home, "deployments", "show", "broken", "blue", "--json").stdout)
    error = shown["status"]["error"]
    assert error.splitlines()[0] == f"broken/blue generation 1 cannot start on Ray: {CORRUPT}"
    assert 'raise RuntimeError("model file is corrupt")' in error
    log = scorehost(home, "deployments", "logs", "broken", "blue", "--generation", "1").stdout.splitlines()
    assert f"its replicas cannot start: {CORRUPT}" in log
    assert '  File "' + str(SCRIPTS / "init_fails.py") + '", line 5, in init' in log


def _marked(mark: Path, timeout: float = 30) -> int:
    """The pid run() wrote once it began."""
    deadline = time.monotonic() + timeout
    while not (mark.exists() and mark.read_text()):
        assert time.monotonic() < deadline, "run() never began"
        time.sleep(0.05)
    return int(mark.read_text())


def _the_gateways_own(reply: httpx.Response, *statuses: int) -> None:
    assert reply.status_code in statuses, (reply.status_code, reply.text)
    assert reply.headers["content-type"] == "application/json"
    assert set(reply.json()) == {"error"}
    assert reply.headers["x-ms-run-function-failed"] == "False"  # not the script's failure
    assert reply.headers["x-ms-request-id"] == reply.headers["x-request-id"]
    assert reply.headers["x-ms-server-version"].startswith("scorehost/")


@pytest.mark.timeout(240)  # the session's cluster may start in it, on a busy machine
def test_a_request_lost_with_its_replica_is_the_gateways_502_and_its_replacement_a_restart(
    backend: RayBackend,
    ray_cluster: Cluster,
    gateway: tuple[Path, str],
    tmp_path: Path,
) -> None:
    handle = test_ray_backend._started(
        backend, spec(ray_cluster, "marks_then_sleeps.py", "killed", max_ongoing=1, max_queued=1)
    )
    try:
        home, url = gateway
        routes = {"auth": "none", "deployments": {"killed": {"weight": 100, "targets": backend.targets(handle)}}}
        write_routes(routes_path(home), {"version": 1, "endpoints": {"mnist": routes}})
        time.sleep(0.2)  # past the gateway's reload check
        [first] = backend.status(handle).instances
        assert re.fullmatch(r"killed-1-[a-z0-9]+", first.name)
        assert (first.state, first.restarts) == (InstanceState.READY, 0)

        with httpx.Client(base_url=url, timeout=30) as client, ThreadPoolExecutor(4) as pool:

            def score(body: dict[str, object]) -> httpx.Response:
                return client.post("/endpoints/mnist/score", json=body)

            lost = pool.submit(score, {"seconds": 5, "mark": str(tmp_path / "lost")})
            pid = _marked(tmp_path / "lost")
            os.kill(pid, signal.SIGKILL)
            _the_gateways_own(lost.result(), 502, 503)  # not Serve's plain-text 500

            deadline = time.monotonic() + 90
            while (reply := score({})).status_code != 200:  # Serve replaces the replica
                if reply.status_code != 408:  # Serve's own deadline passed while the request waited for it
                    _the_gateways_own(reply, 502, 503)
                assert time.monotonic() < deadline, "the killed replica was never replaced"
                time.sleep(0.2)
            assert reply.json()["pid"] != pid

            # A full queue (one running, one waiting): Serve's 503 at once, as the gateway's own.
            running = pool.submit(score, {"seconds": 3, "mark": str(tmp_path / "running")})
            _marked(tmp_path / "running")
            more = [pool.submit(score, {}) for _ in range(3)]
            replies = [future.result() for future in more]
            refused = [reply for reply in replies if reply.status_code != 200]
            assert refused, [reply.status_code for reply in replies]
            for reply in refused:
                _the_gateways_own(reply, 503)
                assert reply.headers["retry-after"] == "1"
            assert running.result().status_code == 200

        [now] = backend.status(handle).instances
        assert now.name != first.name  # another replica, under a name of its own
        assert re.fullmatch(r"killed-1-[a-z0-9]+", now.name)
        assert (now.state, now.restarts) == (InstanceState.READY, 1)
        assert now.last_error is not None
        assert now.last_error.startswith(f"replaces replica {first.name.rsplit('-', 1)[1]}, which stopped")
        assert backend.status(handle).restarts == 1
    finally:
        test_ray_backend._stopped(backend, handle)
