"""Workers and supervision with real processes: stuck and killed workers, concurrency, shutdown, preload."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest
from conftest import Server

Serve = Callable[..., Server]


def pid_of(response: httpx.Response) -> int:
    assert response.status_code == 200, response.text
    return int(response.json()["pid"])


def clients_per_worker(server: Server, workers: int, stack: ExitStack, deadline: float = 20) -> dict[int, httpx.Client]:
    """One keep-alive client per worker: open connections until each worker has answered on one.

    The kernel spreads new connections over the workers' SO_REUSEPORT sockets; a keep-alive
    connection then stays with the worker that accepted it.
    """
    clients: dict[int, httpx.Client] = {}
    end = time.monotonic() + deadline
    while len(clients) < workers:
        assert time.monotonic() < end, f"only workers {sorted(clients)} answered:\n{server.log}"
        client = stack.enter_context(server.client())
        clients.setdefault(pid_of(client.post("/score", json={"data": "pid"})), client)
    return clients


def fresh_pid(server: Server) -> int:
    """The pid of the worker that answers a request on a new connection."""
    return pid_of(httpx.post(f"{server.url}/score", json={"data": "pid"}, timeout=30))


def wait_for_new_worker(server: Server, known: set[int], deadline: float = 20) -> int:
    """Send requests on new connections until a worker that is not in `known` answers; all must succeed."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        pid = fresh_pid(server)
        if pid not in known:
            return pid
    raise AssertionError(f"no new worker answered (known: {known}):\n{server.log}")


# --- supervision ---------------------------------------------------------------------------------


def test_run_hung_in_c_gets_its_worker_replaced_while_the_others_keep_serving(serve: Serve) -> None:
    # hangs.py blocks in C (threading.Event().wait()), where no timeout can reach it: the request cannot be
    # answered, so its worker is replaced after the deadline and the grace period, and the service goes on.
    server = serve("hangs.py", "--workers", "2", "--timeout", "1")
    with ExitStack() as stack, ThreadPoolExecutor(1) as pool:
        clients = clients_per_worker(server, 2, stack)
        hung = pool.submit(
            httpx.post, f"{server.url}/score", json={"data": "hang"}, headers={"x-request-id": "hung"}, timeout=30
        )
        line = server.wait_for_log(r"\[hung\] hanging in pid \d+")
        hung_pid = int(line.rsplit(" ", 1)[1])
        assert hung_pid in clients
        (other_pid, other) = next((pid, client) for pid, client in clients.items() if pid != hung_pid)

        # While run() hangs in one worker, the other answers.
        for _ in range(5):
            assert pid_of(other.post("/score", json={"data": "ok"})) == other_pid

        with pytest.raises(httpx.RemoteProtocolError):
            hung.result()
        # (the idle keep-alive connection may have been closed meanwhile: any live worker may answer)
        assert other.post("/score", json={"data": "ok"}).status_code == 200

        server.wait_for_log(
            rf"\[{hung_pid}\] scorehost.worker - run\(\) for request hung is still running [\d.]+ s "
            r"after the request arrived, "
            rf"past its deadline and a 5.0 s grace period; this worker \(pid {hung_pid}\) stops taking requests"
        )
        server.wait_for_log(rf"worker \d \(pid {hung_pid}, up [\d.]+ s\) was replaced: .*; restarting it")

        # The replacement serves, and so does everything else from now on.
        new_pid = wait_for_new_worker(server, {hung_pid, other_pid})
        assert {fresh_pid(server) for _ in range(20)} <= {new_pid, other_pid}
        assert httpx.get(f"{server.url}/ready").status_code == 200
    assert server.process.poll() is None


def test_worker_killed_under_load_loses_only_its_in_flight_requests(serve: Serve) -> None:
    server = serve("hangs.py", "--workers", "2")
    stop = threading.Event()
    lock = threading.Lock()
    answered: dict[int, int] = {}  # pid -> successful requests
    failures: list[str] = []
    senders = 4

    def send() -> None:
        while not stop.is_set():
            try:  # a new connection each time, so the load spreads over both workers
                response = httpx.post(f"{server.url}/score", json={"data": "ok"}, timeout=30)
            except httpx.HTTPError as exc:
                with lock:
                    failures.append(repr(exc))
                continue
            with lock:
                if response.status_code == 200:
                    pid = response.json()["pid"]
                    answered[pid] = answered.get(pid, 0) + 1
                else:
                    failures.append(f"{response.status_code} {response.text}")

    def wait_until(condition: Callable[[], bool], what: str) -> None:
        end = time.monotonic() + 30
        while not condition():
            assert time.monotonic() < end, f"timed out waiting for {what}; answered {answered}:\n{server.log}"
            time.sleep(0.02)

    with ThreadPoolExecutor(senders) as pool:
        running = [pool.submit(send) for _ in range(senders)]
        try:
            wait_until(lambda: len(answered) == 2 and min(answered.values()) >= 20, "load on both workers")
            victim, survivor = sorted(answered)
            os.kill(victim, signal.SIGKILL)
            server.wait_for_log(rf"worker \d \(pid {victim}, up [\d.]+ s\) was killed by SIGKILL; restarting it")
            wait_until(lambda: len(answered) == 3 and min(answered.values()) >= 20, "load on the replacement")
        finally:
            stop.set()
            for future in running:
                future.result()

    # Each sender has at most one request in flight, so at most that many can have been lost.
    assert len(failures) <= senders, failures
    replacement = next(pid for pid in answered if pid not in (victim, survivor))
    assert {fresh_pid(server) for _ in range(20)} <= {survivor, replacement}
    assert httpx.get(f"{server.url}/ready").status_code == 200


def test_200_concurrent_connections(serve: Serve) -> None:
    server = serve("echo.py", "--workers", "2")
    host, port = server.url.removeprefix("http://").rsplit(":", 1)
    body = b'{"data": [1, 2, 3]}'
    request = (
        b"POST /score HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body)
    )

    async def all_at_once(count: int) -> list[bytes]:
        # Every connection is open before the first request is sent.
        connections = [await asyncio.open_connection(host, int(port)) for _ in range(count)]
        for _, writer in connections:
            writer.write(request)
        await asyncio.gather(*(writer.drain() for _, writer in connections))
        answers = await asyncio.gather(*(reader.read() for reader, _ in connections))
        for _, writer in connections:
            writer.close()
        await asyncio.gather(*(writer.wait_closed() for _, writer in connections))
        return answers

    answers = asyncio.run(asyncio.wait_for(all_at_once(200), 60))
    assert len(answers) == 200
    statuses = [answer.split(b"\r\n", 1)[0] for answer in answers]
    assert statuses == [b"HTTP/1.1 200 OK"] * 200
    assert all(answer.endswith(b'{"received":"[1,2,3]"}') for answer in answers)


def test_sigterm_lets_the_in_flight_request_finish(serve: Serve) -> None:
    server = serve("slow.py")
    with ThreadPoolExecutor(1) as pool:
        in_flight = pool.submit(
            httpx.post, f"{server.url}/score", json={"data": 1}, headers={"x-request-id": "last"}, timeout=30
        )
        server.wait_for_log(r"\[last\] sleeping 1.0 s")
        server.process.send_signal(signal.SIGTERM)
        response = in_flight.result()
    assert response.status_code == 200
    assert response.json()["slept"] == 1.0
    assert server.wait_exit(30) == 0
    assert "SIGTERM received: finishing in-flight requests, then stopping" in server.log
    assert re.search(r"scorehost.access - \[last\] POST /score 200 ", server.log)


def test_sigint_stops_an_idle_server_cleanly(serve: Serve) -> None:
    server = serve("echo.py", "--workers", "2")
    assert server.stop(signal.SIGINT) == 0
    assert "SIGINT received" in server.log
    assert "killing it" not in server.log


def test_keep_alive_reuses_one_connection(serve: Serve) -> None:
    server = serve("hangs.py", "--workers", "2")
    local_ports = set()
    responses = []
    with server.client() as client:
        for _ in range(5):
            responses.append(client.post("/score", json={"data": "ok"}))
            local_ports.add(responses[-1].extensions["network_stream"].get_extra_info("client_addr")[1])
    assert len(local_ports) == 1
    assert len({pid_of(r) for r in responses}) == 1
    assert all(r.headers.get("connection", "keep-alive") != "close" for r in responses)


# --- worker settings -----------------------------------------------------------------------------


@pytest.mark.parametrize("preload", [True, False], ids=["preload", "per-worker"])
def test_preload_runs_init_once_before_forking(serve: Serve, tmp_path: Path, preload: bool) -> None:
    inits = tmp_path / "inits"
    args = ["--workers", "2", *(["--preload"] if preload else [])]
    server = serve("init_counter.py", *args, env={"INIT_LOG": str(inits)})
    with ExitStack() as stack:
        workers = set(clients_per_worker(server, 2, stack))
    init_pids = {int(pid) for pid in inits.read_text().split()}
    if preload:
        assert init_pids == {server.process.pid}  # once, in the supervisor
        assert "init() once before forking (--preload)" in server.log
    else:
        assert init_pids == workers  # once in each worker


def test_workers_auto_is_one_per_core(serve: Serve) -> None:
    cores = len(os.sched_getaffinity(0))
    server = serve("echo.py", "--workers", "auto")
    assert f"workers: {cores}, run() threads per worker: 1" in server.log
    server.wait_for_log(rf"ready: {cores} worker\(s\) serving")


@pytest.mark.parametrize(("threads", "overlap"), [(2, 2), (1, 1)])
def test_threads_decide_how_many_run_calls_overlap(serve: Serve, threads: int, overlap: int) -> None:
    server = serve("slow.py", "--threads", str(threads))
    assert f"workers: 1, run() threads per worker: {threads}" in server.log
    with server.client() as first, server.client() as second, ThreadPoolExecutor(2) as pool:
        long = pool.submit(first.post, "/score", json={"data": 1}, headers={"x-request-id": "long"})
        server.wait_for_log(r"\[long\] sleeping")
        short = pool.submit(second.post, "/score", json={"data": 0}, headers={"x-request-id": "short"})
        # The short call starts while the long one sleeps only if there is a second run thread.
        assert short.result().json()["peak"] == overlap
        assert long.result().json()["peak"] == overlap
