"""A one-machine Ray head node for trying scorehost on Ray, for the tests and for the benchmark: started with
`ray start --head --block` in a process group of its own, so stopping it stops this cluster only (`ray stop`
would stop every Ray cluster of the machine), in high-throughput mode, with token authentication in a
private token file.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scorehost.ray.config import HIGH_THROUGHPUT_ENVIRONMENT

__all__ = ["LocalCluster", "end_marked", "local_cluster", "local_node"]

_MARK = "SCOREHOST_LOCAL_RAY_CLUSTER"


@dataclass(frozen=True)
class LocalCluster:
    address: str  # the head's GCS, HOST:PORT, for ray.init() and `serve run --address`
    environment: dict[str, str]  # what drivers need to connect (the token file, the Serve mode)
    log: Path  # what `ray start` printed
    pgid: int  # the process group of every process of the cluster


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


@contextlib.contextmanager
def local_cluster(
    port: int = 26379,
    num_cpus: int = 2,
    timeout: float = 60.0,
    environment: dict[str, str] | None = None,
    *,
    token_auth: bool = True,
) -> Iterator[LocalCluster]:
    """A head node on 127.0.0.1:`port` (outside 10002-19999, Ray's worker port range) with `num_cpus` CPUs,
    and `environment` for its processes. The variables drivers need are set in this process while it runs,
    and restored afterwards. `token_auth=False` starts one that checks no tokens (open to anyone who reaches
    it), for the test that such a cluster is refused."""
    ray = Path(sys.executable).with_name("ray")
    if not ray.exists():
        raise RuntimeError("Ray is not installed: pip install 'scorehost[ray]'")
    if _listening(port):
        raise RuntimeError(f"port {port} is taken (another Ray cluster?); choose another port")
    temp = Path(tempfile.mkdtemp(prefix="scorehost-ray-"))
    if token_auth:
        token = temp / "auth_token"  # not ~/.ray/auth_token: the user's own clusters keep theirs
        token.write_text(secrets.token_hex(32))
        token.chmod(0o600)
        auth = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token)}
    else:  # said outright: a head that finds a token file (~/.ray/auth_token) turns token checks on by itself
        auth = {"RAY_AUTH_MODE": "disabled"}
    environment = {
        **(environment or {}),
        **HIGH_THROUGHPUT_ENVIRONMENT,
        **auth,
        "RAY_USAGE_STATS_ENABLED": "0",
        _MARK: temp.name,  # inherited by every process of the cluster: how _stop finds them all
    }
    saved = dict(os.environ)
    os.environ.update(environment)
    command = [str(ray), "start", "--head", "--block", "--node-ip-address=127.0.0.1", f"--port={port}"]
    command += [f"--num-cpus={num_cpus}", "--include-dashboard=false", "--disable-usage-stats", f"--temp-dir={temp}"]
    log = temp / "ray-start.log"
    with log.open("w") as out:
        head = subprocess.Popen(
            command, env=dict(os.environ), stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        deadline = time.monotonic() + timeout
        while not _listening(port):
            if head.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"Ray's head did not start:\n{log.read_text(errors='replace')[-3000:]}")
            time.sleep(0.2)
        yield LocalCluster(f"127.0.0.1:{port}", environment, log, head.pid)
    finally:
        _stop(head, f"{_MARK}={temp.name}".encode(), str(temp).encode())
        os.environ.clear()
        os.environ.update(saved)
        shutil.rmtree(temp, ignore_errors=True)


@contextlib.contextmanager
def local_node(cluster: LocalCluster, num_cpus: int = 2, timeout: float = 60.0) -> Iterator[int]:
    """A second node of `cluster` on this machine, with `num_cpus` CPUs, for trying replicas on several nodes;
    yields the node process's pid. Serve's ingress must run on the head only (`proxy_location="HeadOnly"`), or
    both nodes' proxies would ask for the same port."""
    ray = Path(sys.executable).with_name("ray")
    mark = f"{cluster.environment[_MARK]}-node-{secrets.token_hex(4)}"
    environment = {**os.environ, **cluster.environment, _MARK: mark}
    # Ports of their own: the head's dashboard agent already holds the default one on this machine.
    command = [str(ray), "start", f"--address={cluster.address}", "--block", "--node-ip-address=127.0.0.1"]
    command += [f"--num-cpus={num_cpus}", "--disable-usage-stats", "--dashboard-agent-listen-port=0"]
    log = cluster.log.with_name(f"ray-node-{mark}.log")
    with log.open("w") as out:
        node = subprocess.Popen(command, env=environment, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        ray_api: Any = importlib.import_module("ray")  # this process is connected to the cluster by now
        deadline = time.monotonic() + timeout
        while len([node for node in ray_api.nodes() if node["Alive"]]) < 2:
            if node.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the second Ray node did not join:\n{log.read_text(errors='replace')[-3000:]}")
            time.sleep(0.2)
        yield node.pid
    finally:
        _stop(node, f"{_MARK}={mark}".encode())


def _stop(head: subprocess.Popen[bytes], mark: bytes, folder: bytes | None = None) -> None:
    # A throwaway cluster keeps nothing worth a graceful stop, which took 10 s (`ray start --block` ends what it
    # started only after 5 s, and some processes ignore SIGTERM): every process of it is killed at once. Some leave
    # the head's process group (Serve's HAProxy, started by a worker in a session of its own): those carry `mark`.
    end_marked(mark, folder, {head.pid}, grace=0.0)
    with contextlib.suppress(subprocess.TimeoutExpired):
        head.wait(10)


def end_marked(mark: bytes, folder: bytes | None = None, also: set[int] | None = None, grace: float = 5.0) -> None:
    """End every process whose environment holds `mark` (b"NAME=VALUE") or that uses `folder` (see `_marked`),
    and the pids in `also`: SIGTERM, then SIGKILL to those still there `grace` seconds later. A Ray cluster started
    without `--block` (`ray start` as the docs say) is stopped so, where `ray stop` would stop every Ray cluster of
    the machine."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        for pid in _marked(mark, folder) | (also or set()):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + wait
        while _marked(mark, folder) and time.monotonic() < deadline:
            time.sleep(0.1)


def _marked(mark: bytes, folder: bytes | None = None) -> set[int]:
    """Processes whose environment holds `mark`, or that name the cluster's `folder` in their command line or
    hold files open in it (Ray's dashboard and runtime-env agents start with an environment of their own and
    rename themselves, but keep their logs there)."""
    found = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != os.getpid():
            try:
                if mark in Path(f"/proc/{entry}/environ").read_bytes().split(b"\0") or (
                    folder is not None and _uses(Path(f"/proc/{entry}"), folder)
                ):
                    found.add(int(entry))
            except OSError:  # gone, or not ours to read
                continue
    return found


def _uses(process: Path, folder: bytes) -> bool:
    if folder in process.joinpath("cmdline").read_bytes():
        return True
    prefix = os.fsdecode(folder) + os.sep
    for fd in os.listdir(process / "fd"):
        with contextlib.suppress(OSError):
            if os.readlink(process / "fd" / fd).startswith(prefix):
                return True
    return False
