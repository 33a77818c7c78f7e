"""Token authentication on real clusters: the session cluster (scorehost.ray.localcluster) refuses a driver
without its token and takes one with it; the Ray backend says at once when it has no token or the wrong one,
and refuses a cluster that checks no tokens unless told --insecure-cluster; docs/ray.md's "Start a cluster",
run as written, gives a cluster that refuses a driver without its token."""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from _control_plane import free_port
from _ray_cluster import Cluster

from scorehost.ray.auth import checks_tokens
from scorehost.ray.localcluster import LocalCluster, end_marked, local_cluster

# Two of these start a Ray head of their own (~10 s, much more on a busy machine).
pytestmark = pytest.mark.timeout(240)

DOCS = Path(__file__).parents[2] / "docs" / "ray.md"
# A driver that, once connected, has the cluster write a file: proof that it ran code there ("-": connect only).
DRIVER = """
import sys, ray
ray.init(address=sys.argv[1], log_to_driver=False)
if sys.argv[2] != "-":
    ray.get(ray.remote(num_cpus=0)(lambda path: open(path, "w").write("ran")).remote(sys.argv[2]))
print("CONNECTED")
"""
# Ray's driver retries a cluster that refuses it for ~20 s (one try a second) before giving up: 2 tries here.
_FEW_TRIES = {"RAY_gcs_server_port_wait_time_s": "2"}


def _clean_environment(home: Path, **extra: str) -> dict[str, str]:
    """This process's environment without Ray's variables (the session cluster's token among them)."""
    kept = {name: value for name, value in os.environ.items() if not name.startswith(("RAY_", "SCOREHOST_LOCAL_RAY"))}
    return {**kept, "HOME": str(home), "RAY_USAGE_STATS_ENABLED": "0", **extra}


def _driver(tmp_path: Path) -> Path:
    script = tmp_path / "driver.py"
    script.write_text(DRIVER)
    return script


def _drive(address: str, tmp_path: Path, environment: dict[str, str]) -> tuple[subprocess.CompletedProcess[str], Path]:
    proof = tmp_path / f"ran-{secrets.token_hex(4)}"
    command = [sys.executable, str(_driver(tmp_path)), address, str(proof)]
    done = subprocess.run(command, env=environment, capture_output=True, text=True, timeout=120)
    return done, proof


def test_the_session_cluster_refuses_a_driver_without_its_token(ray_cluster: Cluster, tmp_path: Path) -> None:
    assert checks_tokens(ray_cluster.address)
    for environment in (
        _clean_environment(tmp_path, **_FEW_TRIES),  # plain Ray: no token anywhere
        _clean_environment(tmp_path, RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(32), **_FEW_TRIES),
    ):
        done, proof = _drive(ray_cluster.address, tmp_path, environment)
        assert done.returncode != 0, done.stdout
        assert "Authentication token is missing or incorrect" in done.stderr, done.stderr[-2000:]
        assert not proof.exists()


def test_a_driver_with_the_token_runs_code(ray_cluster: Cluster, tmp_path: Path) -> None:
    token = {name: os.environ[name] for name in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN_PATH")}  # the session cluster's
    done, proof = _drive(ray_cluster.address, tmp_path, _clean_environment(tmp_path, **token))
    assert done.returncode == 0, done.stderr[-3000:]
    assert proof.read_text() == "ran"


# The Ray backend, in a process of its own (this one is connected to the session cluster already), made once
# for each of the token variables `cases` (one process for all: importing Serve takes seconds).
BACKEND = """
import json, os, sys, time
from pathlib import Path
from scorehost.deploy.backends.ray_serve import RayBackend
from scorehost.deploy.spec import DeploymentSpec, RayOptions
from scorehost.errors import InvalidSpec, ServiceUnavailable

address, scripts, cases = sys.argv[1], Path(sys.argv[2]), json.loads(sys.argv[3])
for case in cases:
    os.environ.update(case)
    begin = time.monotonic()
    try:
        backend = RayBackend(address)
    except ServiceUnavailable as error:
        print(f"UNAVAILABLE after {time.monotonic() - begin:.1f} s: {error}")
        continue
    for insecure in (False, True):
        options = RayOptions(address, num_cpus=0.1, insecure_cluster=insecure)
        spec = DeploymentSpec("mnist", "blue", scripts / "echo.py", scripts, backend="ray", ray=options)
        try:
            backend.check(spec)
            print(f"insecure_cluster={insecure}: ACCEPTED")
        except InvalidSpec as error:
            print(f"insecure_cluster={insecure}: REFUSED {error}")
    backend.close()
"""


def _backend(address: str, environment: dict[str, str], cases: list[dict[str, str]]) -> list[str]:
    scripts = Path(__file__).parents[1] / "scripts"
    command = [sys.executable, "-c", BACKEND, address, str(scripts), json.dumps(cases)]
    done = subprocess.run(command, env=environment, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.splitlines()


def test_the_backend_says_at_once_that_it_lacks_the_token(ray_cluster: Cluster, tmp_path: Path) -> None:
    """Before ray.init, which would retry for ~20 s and then say only "Failed to connect": the fix, in seconds."""
    wrong, missing = tmp_path / "wrong_token", tmp_path / "missing"
    wrong.write_text(secrets.token_hex(32))
    cases = [{}, {"RAY_AUTH_TOKEN_PATH": str(wrong)}, {"RAY_AUTH_TOKEN_PATH": str(missing)}]
    none, refused, absent = _backend(ray_cluster.address, _clean_environment(tmp_path), cases)
    assert re.fullmatch(r"UNAVAILABLE after [\d.]+ s: .*", none), none
    assert f"the Ray cluster at {ray_cluster.address} checks tokens, and this control plane has none" in none
    assert "~/.ray/auth_token" in none
    assert "RAY_AUTH_TOKEN_PATH" in none
    assert f"refused this control plane's token, from RAY_AUTH_TOKEN_PATH ({wrong}): it is not the cluster's" in refused
    assert f"RAY_AUTH_TOKEN_PATH names {missing}, which is missing or empty" in absent


@pytest.fixture
def open_cluster() -> Iterator[LocalCluster]:
    """A head node that checks no tokens (beside the session's, if it runs)."""
    with local_cluster(free_port(), num_cpus=1, token_auth=False) as cluster:
        yield cluster


def test_a_cluster_without_token_checks_is_refused_unless_insecure(open_cluster: LocalCluster, tmp_path: Path) -> None:
    assert not checks_tokens(open_cluster.address)
    refused, accepted = _backend(open_cluster.address, _clean_environment(tmp_path), [{}])  # no token needed there
    assert refused == (
        f"insecure_cluster=False: REFUSED the Ray cluster at {open_cluster.address} has no token authentication: "
        "anyone who reaches its ports can run code on it. Turn it on (RAY_AUTH_MODE=token exported and the "
        "cluster's token file in place on every node before `ray start`, and on the control plane's machine; "
        "docs/ray.md, Start a cluster), or pass --insecure-cluster if the cluster is on a network only you control"
    )
    assert accepted == "insecure_cluster=True: ACCEPTED"


def _docs_setup() -> list[str]:
    """The commands of docs/ray.md's "Start a cluster" for the head and the control plane's machine (the further
    machines' need another one), with 1 core."""
    section = DOCS.read_text().split("## Start a cluster", 1)[1]
    match = re.search(r"```bash\n(.*?)```", section, re.DOTALL)
    assert match, "docs/ray.md: no bash block under 'Start a cluster'"
    return [line.replace("<cores>", "1") for line in match.group(1).splitlines() if "<head-ip>" not in line]


def test_the_documented_setup_refuses_a_driver_without_its_token(tmp_path: Path) -> None:
    """Word for word, on port 6379 as written: in a network namespace of its own, beside the session cluster."""
    if shutil.which("unshare") is None or subprocess.run(["unshare", "--net", "true"]).returncode != 0:
        pytest.skip("needs a private network namespace (unshare --net, as root) to start a head on 6379")
    setup = _docs_setup()
    assert any(line.startswith("ray start --head") for line in setup), setup
    home, stranger = tmp_path / "home", tmp_path / "stranger"
    home.mkdir()
    stranger.mkdir()
    mark = secrets.token_hex(4)  # in every process of the cluster: how they are all found and ended
    ray_temp = Path(tempfile.mkdtemp(prefix="scorehost-docs-ray-"))  # short: Ray's socket paths must fit
    path = f"{Path(sys.executable).parent}:{os.environ['PATH']}"  # `ray` of this environment
    environment = _clean_environment(home, RAY_TMPDIR=str(ray_temp), PATH=path, SCOREHOST_TEST_DOCS_RAY=mark)
    driver, few_tries = _driver(tmp_path), " ".join(f"{name}={value}" for name, value in _FEW_TRIES.items())
    checks = [
        "echo TOKEN_MODE $(stat -c %a ~/.ray/auth_token)",
        # someone on the network with plain Ray, or this machine's user without the token file
        f"env -u RAY_AUTH_MODE HOME={stranger} {few_tries} {sys.executable} {driver} 127.0.0.1:6379 "
        f"{tmp_path}/stranger-ran || echo STRANGER_REFUSED",
        f"{sys.executable} {driver} 127.0.0.1:6379 -",  # as the docs set up this machine: let in
    ]
    script = "\n".join(["set -e", "ip link set lo up", "cd ~", *setup, *checks])
    try:
        command = ["unshare", "--net", "--", "bash", "-c", script]
        done = subprocess.run(command, env=environment, capture_output=True, text=True, timeout=200)
    finally:
        end_marked(f"SCOREHOST_TEST_DOCS_RAY={mark}".encode(), str(ray_temp).encode(), grace=0.0)  # thrown away
        shutil.rmtree(ray_temp, ignore_errors=True)
    said = done.stdout + done.stderr[-4000:]
    assert done.returncode == 0, said
    assert "Token authentication is disabled" not in said
    assert "TOKEN_MODE 600" in done.stdout, said
    assert "STRANGER_REFUSED" in done.stdout, said
    assert "Authentication token is missing or incorrect" in done.stderr
    assert not (tmp_path / "stranger-ran").exists()
    assert done.stdout.endswith("CONNECTED\n"), said  # the token's owner gets in
