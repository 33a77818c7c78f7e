"""The supervisor with real processes: hung workers (SIGSTOP, C code holding the GIL) are found by their heartbeat
and replaced, workers die with their supervisor, and settings the workers cannot honour stop `serve` up front."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest
from conftest import SCRIPTS, Server
from prometheus_client.parser import text_string_to_metric_families

Serve = Callable[..., Server]


def pid_of(response: httpx.Response) -> int:
    assert response.status_code == 200, response.text
    return int(response.json()["pid"])


def worker_pids(server: Server, workers: int, stack: ExitStack) -> dict[int, httpx.Client]:
    """One keep-alive client per worker (each new connection lands on one of the workers' sockets)."""
    clients: dict[int, httpx.Client] = {}
    end = time.monotonic() + 20
    while len(clients) < workers:
        assert time.monotonic() < end, f"only workers {sorted(clients)} answered:\n{server.log}"
        client = stack.enter_context(server.client())
        clients.setdefault(pid_of(client.post("/score", json={"data": 0})), client)
    return clients


def answers_on_new_connections(server: Server, count: int) -> set[int]:
    """Send `count` requests, each on a new connection; every one must succeed. Returns the pids that answered."""
    return {pid_of(httpx.post(f"{server.url}/score", json={"data": 0}, timeout=30)) for _ in range(count)}


def restarts(server: Server, cause: str) -> float:
    text = httpx.get(f"{server.url}/metrics", timeout=10).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "scorehost_worker_restarts_total" and sample.labels == {"cause": cause}:
                return sample.value
    return 0.0


def gone(pid: int) -> bool:
    """Whether the process has exited (a zombie waiting for its new parent counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state in ("Z", "X")


# --- heartbeat -----------------------------------------------------------------------------------


def test_a_stopped_worker_is_killed_and_replaced_and_the_log_says_why(serve: Serve) -> None:
    server = serve("holds_gil.py", "--workers", "2", env={"SCOREHOST_HEARTBEAT_TIMEOUT": "3"})
    with ExitStack() as stack:
        stopped, other = sorted(worker_pids(server, 2, stack))
    os.kill(stopped, signal.SIGSTOP)  # (the SIGKILL at teardown reaches a stopped process too)
    server.wait_for_log(
        rf"worker \d \(pid {stopped}, up [\d.]+ s\) was stopped \(SIGSTOP/SIGTSTP\): no heartbeat for [\d.]+ s "
        r"\(--heartbeat-timeout 3\); killed; restarting it",
        timeout=30,
    )
    # Every request succeeds again, and the replacement takes its share.
    end = time.monotonic() + 30
    answered: set[int] = set()
    while not answered - {stopped, other}:
        assert time.monotonic() < end, f"no replacement answered:\n{server.log}"
        answered |= answers_on_new_connections(server, 5)
    assert stopped not in answered
    assert restarts(server, "hung") == 1


def test_a_worker_holding_the_gil_in_c_is_killed_and_replaced(serve: Serve) -> None:
    # holds_gil.py sleeps in C with the GIL held: the worker's watchdog cannot raise the timeout, nor report
    # itself stuck; only the supervisor, from outside, can see it.
    server = serve("holds_gil.py", "--workers", "2", "--timeout", "1", env={"SCOREHOST_HEARTBEAT_TIMEOUT": "3"})
    with ExitStack() as stack, ThreadPoolExecutor(1) as pool:
        clients = worker_pids(server, 2, stack)
        held = pool.submit(httpx.post, f"{server.url}/score", json={"data": 60}, timeout=90)
        line = server.wait_for_log(r"holding the GIL for 60 s in pid \d+")
        stuck = int(line.rsplit(" ", 1)[1])
        assert stuck in clients
        server.wait_for_log(
            rf"worker \d \(pid {stuck}, up [\d.]+ s\) is stuck in code that holds the GIL \(a C call that never "
            r"lets Python run\): no heartbeat for [\d.]+ s \(--heartbeat-timeout 3\); killed; restarting it",
            timeout=30,
        )
        with pytest.raises(httpx.RemoteProtocolError):  # its connection dropped with the worker: no answer
            held.result()
    assert stuck not in answers_on_new_connections(server, 10)
    assert restarts(server, "hung") == 1


def test_a_worker_busy_in_python_keeps_its_heartbeat(serve: Serve) -> None:
    # Pure-Python work gives the GIL up every few milliseconds: the heartbeat goes on, nothing is replaced.
    server = serve("busy_loop.py", "--heartbeat-timeout", "2")
    response = httpx.post(f"{server.url}/score", json={"data": 5}, timeout=30)
    assert response.status_code == 200
    assert "heartbeat" not in server.log
    assert restarts(server, "hung") == 0


# --- the supervisor's death ----------------------------------------------------------------------


def test_workers_exit_when_the_supervisor_is_killed(serve: Serve) -> None:
    server = serve("holds_gil.py", "--workers", "2")
    with ExitStack() as stack:
        workers = set(worker_pids(server, 2, stack))
    os.kill(server.process.pid, signal.SIGKILL)
    end = time.monotonic() + 15
    while not all(gone(pid) for pid in workers):
        assert time.monotonic() < end, f"workers {[pid for pid in workers if not gone(pid)]} outlived the supervisor"
        time.sleep(0.05)
    with pytest.raises(httpx.ConnectError):  # nothing listens on the port any more
        httpx.get(f"{server.url}/live", timeout=5)


# --- settings the workers cannot honour ----------------------------------------------------------


def python_path(folder: Path) -> dict[str, str]:
    """The environment that puts `folder` (with its sitecustomize.py) first on the server's PYTHONPATH."""
    return {"PYTHONPATH": os.pathsep.join([str(folder), *filter(None, [os.environ.get("PYTHONPATH")])])}


def test_otlp_without_the_extra_exits_2_before_any_worker_starts(serve: Serve) -> None:
    server = serve(
        "echo.py",
        "--otlp-endpoint",
        "http://127.0.0.1:9/v1/traces",
        env=python_path(SCRIPTS / "site_without_otel"),
        ready=False,
    )
    assert server.wait_exit(60) == 2
    assert "--otlp-endpoint needs OpenTelemetry: pip install 'scorehost[otel]'" in server.log
    assert "Traceback" not in server.log
    assert "worker" not in server.log  # none started, none restarted
    assert "listening on" not in server.log


def test_an_otlp_endpoint_that_is_not_a_url_exits_2(serve: Serve) -> None:
    server = serve("echo.py", "--otlp-endpoint", "collector:4318", ready=False)
    assert server.wait_exit(60) == 2
    assert "'collector:4318' is not an http:// or https:// URL" in server.log
    assert "http://127.0.0.1:4318/v1/traces" in server.log
