"""Endpoints on Ray as a user drives them: `scorehost deployments create --backend ray` through the real control
plane and gateway; a rolling update on Ray, then a move to local processes, both under continuous load with no
failed request; an unreachable cluster refused at once, with nothing stored."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from _ray_cluster import Cluster

from scorehost.deploy.controlplane.daemon import stop_control_plane

WHOAMI = Path(__file__).parents[1] / "scripts" / "whoami"
SCRIPTS = Path(__file__).parents[1] / "scripts"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Path]:
    workspace = tmp_path / "home"
    yield workspace
    stop_control_plane(workspace)


def scorehost(home: Path, *args: str, code: int = 0) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-m", "scorehost", *args, "--home", str(home)],
        capture_output=True,
        text=True,
        env=os.environ.copy(),  # the cluster's token file, as `ray start` users export it
        timeout=180,
    )
    assert done.returncode == code, f"{args}: exit {done.returncode}\n{done.stdout}{done.stderr}"
    assert "Traceback" not in done.stderr, done.stderr
    return done


class Load:
    """Four clients posting to the scoring URI until stopped; counts answers by deployment name, keeps failures."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.seen: Counter[str] = Counter()
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._post) for _ in range(4)]

    def _post(self) -> None:
        with httpx.Client(timeout=30) as client:
            while not self._stop.is_set():
                try:
                    answer = client.post(self.url, json={"data": 1})
                except httpx.HTTPError as error:
                    self.failures.append(repr(error))
                    continue
                if answer.status_code == 200:
                    self.seen[answer.json()["deployment"]] += 1
                else:
                    self.failures.append(f"{answer.status_code} {answer.text}")

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()

    def wait_for(self, name: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        before = self.seen[name]
        while self.seen[name] < before + 20:
            assert time.monotonic() < deadline, f"{name} never answered: {self.seen}"
            time.sleep(0.1)


def test_a_ray_deployment_rolls_and_moves_to_local_processes_under_load(ray_cluster: Cluster, home: Path) -> None:
    from ray import serve

    port = _free_port()
    scorehost(home, "controlplane", "start", "--api-port", "0", "--gateway-port", str(port))
    scorehost(home, "endpoints", "create", "mnist", "--auth", "none")
    on_ray = ["--backend", "ray", "--ray-address", ray_cluster.address, "--ray-ingress", ray_cluster.ingress]
    on_ray += ["--num-cpus", "0.1", "--graceful-shutdown", "1", "--max-queued", "100"]
    created = scorehost(
        home,
        "deployments",
        "create",
        "mnist",
        "blue",
        "--script",
        str(WHOAMI / "score.py"),
        "--env",
        "DEPLOYMENT_NAME=ray1",
        *on_ray,
    )
    assert created.stdout == "mnist/blue generation 1: ready\n"
    [listed] = json.loads(scorehost(home, "deployments", "list", "mnist", "--json").stdout)
    assert (listed["backend"], listed["ray"]["address"], listed["status"]["state"]) == (
        "ray",
        ray_cluster.address,
        "ready",
    )
    assert "mnist.blue.1" in serve.status().applications

    with Load(f"http://127.0.0.1:{port}/endpoints/mnist/score") as load:
        load.wait_for("ray1")
        rolled = scorehost(
            home, "deployments", "update", "mnist", "blue", "--env", "DEPLOYMENT_NAME=ray2", "--instances", "2"
        )
        assert rolled.stdout == "mnist/blue generation 2: ready\n"
        load.wait_for("ray2")
        moved = scorehost(
            home, "deployments", "update", "mnist", "blue", "--backend", "local", "--env", "DEPLOYMENT_NAME=local3"
        )
        assert moved.stdout == "mnist/blue generation 3: ready\n"
        load.wait_for("local3")
        time.sleep(1.5)  # the Ray generation drains and stops while the load goes on
    assert load.failures == []
    [listed] = json.loads(scorehost(home, "deployments", "list", "mnist", "--json").stdout)
    assert (listed["backend"], listed["ray"]) == ("local", None)

    deadline = time.monotonic() + 60
    while any(name.startswith("mnist.blue.") for name in serve.status().applications):
        assert time.monotonic() < deadline, "the Ray generations were never stopped"
        time.sleep(0.5)

    # Connected to Ray, the control plane still stops in good time, with its gateway.
    began = time.monotonic()
    assert stop_control_plane(home)
    assert time.monotonic() - began < 30
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()


def test_stopping_the_control_plane_stops_its_ray_deployments(ray_cluster: Cluster, home: Path) -> None:
    from ray import serve

    scorehost(home, "controlplane", "start", "--api-port", "0", "--gateway-port", str(_free_port()))
    scorehost(home, "endpoints", "create", "mnist")
    on_ray = ["--backend", "ray", "--ray-address", ray_cluster.address, "--num-cpus", "0.1"]
    for name in ("blue", "green"):
        scorehost(home, "deployments", "create", "mnist", name, "--script", str(WHOAMI / "score.py"), *on_ray)
    live = {name for name, app in serve.status().applications.items() if str(app.status).endswith("RUNNING")}
    assert {"mnist.blue.1", "mnist.green.1"} <= live
    began = time.monotonic()
    assert stop_control_plane(home)
    assert time.monotonic() - began < 30  # Serve drains them on its own, nobody waits 30 s for each
    for name in ("mnist.blue.1", "mnist.green.1"):
        app = serve.status().applications.get(name)
        assert app is None or str(app.status).endswith("DELETING")


def test_an_unreachable_cluster_is_refused_before_anything_is_stored(home: Path) -> None:
    # A port held bound but not listening refuses connections, and nothing else (the gateway, once) can take it.
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        port = held.getsockname()[1]
        scorehost(home, "controlplane", "start", "--api-port", "0", "--gateway-port", str(_free_port()))
        scorehost(home, "endpoints", "create", "mnist")
        began = time.monotonic()
        refused = scorehost(
            home, "deployments", "create", "mnist", "blue", "--script", str(WHOAMI / "score.py"),
            "--backend", "ray", "--ray-address", f"127.0.0.1:{port}", code=1,
        )  # fmt: skip
    assert f"cannot reach the Ray cluster at 127.0.0.1:{port}" in refused.stderr
    assert "ray start --head" in refused.stderr
    assert time.monotonic() - began < 30
    assert json.loads(scorehost(home, "deployments", "list", "mnist", "--json").stdout) == []


def _wheel(folder: Path, version: str) -> Path:
    """A pure-Python wheel of the package `envmarker` (no network, no build tools): a zip with its metadata."""
    import base64
    import hashlib
    import zipfile

    files = {
        "envmarker/__init__.py": f"VERSION = {version!r}\n",
        f"envmarker-{version}.dist-info/METADATA": f"Metadata-Version: 2.1\nName: envmarker\nVersion: {version}\n",
        f"envmarker-{version}.dist-info/WHEEL": (
            "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        ),
    }
    record = [
        f"{name},sha256={base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b'=').decode()},"
        f"{len(text.encode())}"
        for name, text in files.items()
    ]
    files[f"envmarker-{version}.dist-info/RECORD"] = (
        "\n".join([*record, f"envmarker-{version}.dist-info/RECORD,,"]) + "\n"
    )
    folder.mkdir(parents=True, exist_ok=True)
    wheel = folder / f"envmarker-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return wheel


def test_a_ray_deployment_runs_in_its_own_python_environment(ray_cluster: Cluster, home: Path, tmp_path: Path) -> None:
    """The deployment's --environment reaches the replicas as Ray's uv runtime_env: they import the package it
    pins, which the cluster's own environment lacks. (A wheel from a local folder: CI runs these tests without a
    network.)"""
    wheels = tmp_path / "wheels"
    _wheel(wheels, "1.2.3")
    requirements = tmp_path / "requirements.txt"
    requirements.write_text(f"--no-index\n--find-links {wheels}\nenvmarker==1.2.3\n")
    port = _free_port()
    scorehost(home, "controlplane", "start", "--api-port", "0", "--gateway-port", str(port))
    scorehost(home, "endpoints", "create", "env", "--auth", "none")
    on_ray = ["--backend", "ray", "--ray-address", ray_cluster.address, "--ray-ingress", ray_cluster.ingress]
    created = scorehost(
        home, "deployments", "create", "env", "blue", "--script", str(SCRIPTS / "envmarker_version.py"),
        "--environment", str(requirements), "--num-cpus", "0.1", "--graceful-shutdown", "1", *on_ray,
    )  # fmt: skip
    assert created.stdout == "env/blue generation 1: ready\n"
    answer = httpx.post(f"http://127.0.0.1:{port}/endpoints/env/score", json={"data": 1}, timeout=60).json()
    assert answer["envmarker"] == "1.2.3"
    with pytest.raises(ImportError):
        import envmarker  # noqa: F401 - the cluster's (and this test's) environment does not have it

    # Ray cannot give a replica another Python than the cluster's: refused before anything changes (by the Ray
    # backend where that Python is installed here; elsewhere because it is not).
    python = f"{sys.version_info.major}.{sys.version_info.minor + 1}"
    (tmp_path / "conda.yml").write_text(f"dependencies:\n  - python={python}\n  - pip:\n    - envmarker\n")
    refused = scorehost(home, "deployments", "update", "env", "blue", "--environment", str(tmp_path / "conda.yml"),
                        code=1)  # fmt: skip
    assert f"Python {python}" in refused.stderr
    [listed] = json.loads(scorehost(home, "deployments", "list", "env", "--json").stdout)
    assert listed["generation"] == 1
