"""The gateway's budget of buffered body bytes, in process (its counts can be read) on real sockets: every
way a body can end gives back what it reserved, and large bodies wait their turn instead of piling up."""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from test_gateway import Backend, one

from scorehost.deploy.gateway import GatewayApp, Limits, RouteFile, routes_path, write_routes
from scorehost.deploy.gateway.protocol import GatewayProtocol
from scorehost.deploy.gateway.worker import Worker

KiB, MiB = 1024, 1024 * 1024


class InProcess:
    """One gateway worker on its own event loop in a thread."""

    def __init__(self, home: Path, limits: Limits) -> None:
        self.loop = asyncio.new_event_loop()
        self.app = GatewayApp(RouteFile(routes_path(home)), timeout=10)
        self.worker = Worker(limits, upstream_timeout=10)
        self.port = 0
        ready = threading.Event()
        self._stop: asyncio.Future[None] | None = None

        async def main() -> None:
            self._stop = self.loop.create_future()
            self.worker.start()
            server = await self.loop.create_server(lambda: GatewayProtocol(self.app, self.worker), "127.0.0.1", 0)
            self.port = server.sockets[0].getsockname()[1]
            ready.set()
            await self._stop
            self.worker.stop()
            server.close()
            await server.wait_closed()
            self.app.close()

        self.thread = threading.Thread(target=self.loop.run_until_complete, args=(main(),), daemon=True)
        self.thread.start()
        assert ready.wait(10)

    def state(self) -> tuple[int, int, int]:
        """Bytes reserved, waiters, open connections: read on the loop's thread."""

        async def read() -> tuple[int, int, int]:
            budget = self.worker.budget
            return budget.used, len(budget.waiting), len(self.worker.connections)

        return asyncio.run_coroutine_threadsafe(read(), self.loop).result(10)

    def settled(self, timeout: float = 10) -> tuple[int, int, int]:
        """The state once every connection has closed (or as it is at `timeout`)."""
        deadline = time.monotonic() + timeout
        while (state := self.state())[2] and time.monotonic() < deadline:
            time.sleep(0.02)
        return state

    def close(self) -> None:
        assert self._stop is not None
        self.loop.call_soon_threadsafe(self._stop.set_result, None)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture
def backend() -> Iterator[Backend]:
    started = Backend("slow", delay=0.3, keep=False)
    yield started
    started.close()


@contextlib.contextmanager
def in_process(home: Path, backend: Backend, body_timeout: float) -> Iterator[InProcess]:
    """A gateway with a budget of 1 MiB, the most a body may have."""
    write_routes(routes_path(home), {"version": 1, "endpoints": {"open": one(backend.url)}})
    started = InProcess(home, Limits(max_body_size=MiB, body_timeout=body_timeout, max_buffered=MiB))
    try:
        yield started
    finally:
        started.close()


def exchange(port: int, data: bytes, *, then_close: bool = False) -> bytes:
    """Send `data`; return everything answered until the gateway closes or one whole answer came."""
    with socket.create_connection(("127.0.0.1", port), timeout=20) as raw:
        raw.sendall(data)
        if then_close:
            return b""
        received = b""
        with contextlib.suppress(ConnectionResetError):
            while chunk := raw.recv(65536):
                received += chunk
                head, _, body = received.partition(b"\r\n\r\n")
                length = re.search(rb"content-length: (\d+)", head)
                if length and len(body) >= int(length.group(1)):
                    break
        return received


def post(length: int, body: bytes, *, chunked: bool = False) -> bytes:
    if chunked:
        return b"POST /endpoints/open/score HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n" + body
    return b"POST /endpoints/open/score HTTP/1.1\r\nhost: x\r\ncontent-length: %d\r\n\r\n%s" % (length, body)


def chunked(size: int, piece: int = 32 * KiB) -> bytes:
    pieces = [b"%x\r\n%s\r\n" % (min(piece, size - at), b"c" * min(piece, size - at)) for at in range(0, size, piece)]
    return b"".join(pieces) + b"0\r\n\r\n"


def status(received: bytes) -> int:
    match = re.match(rb"HTTP/1.1 (\d{3}) ", received)
    return int(match.group(1)) if match else 0


def test_every_way_a_body_ends_gives_back_what_it_reserved(tmp_path: Path, backend: Backend) -> None:
    with in_process(tmp_path, backend, body_timeout=0.5) as gateway:
        port = gateway.port
        assert status(exchange(port, post(200 * KiB, b"k" * 200 * KiB))) == 200  # reserved whole, before its bytes
        assert status(exchange(port, post(0, chunked(300 * KiB), chunked=True))) == 200  # grows as it comes
        assert status(exchange(port, post(0, chunked(2 * MiB), chunked=True))) == 413  # past the limit
        assert status(exchange(port, post(10, b"0123456789"))) == 200  # small: counted, never waits
        exchange(port, post(500 * KiB, b"h" * 100 * KiB), then_close=True)  # the client leaves mid-body
        assert status(exchange(port, post(500 * KiB, b"s" * 10 * KiB))) == 408  # the body stalls
        assert gateway.settled() == (0, 0, 0)


def test_large_bodies_wait_their_turn_within_the_budget(tmp_path: Path, backend: Backend) -> None:
    """Four bodies of 900 KiB with a budget of 1 MiB: read one at a time, all answered."""
    seen: list[int] = []
    done = threading.Event()
    with in_process(tmp_path, backend, body_timeout=10) as gateway:

        def watch() -> None:
            while not done.is_set():
                seen.append(gateway.state()[0])
                time.sleep(0.01)

        def send(_: int) -> int:
            return status(exchange(gateway.port, post(900 * KiB, b"w" * 900 * KiB)))

        watcher = threading.Thread(target=watch)
        watcher.start()
        try:
            with ThreadPoolExecutor(4) as pool:
                assert list(pool.map(send, range(4))) == [200] * 4
        finally:
            done.set()
            watcher.join()
        assert gateway.settled() == (0, 0, 0)
    assert len(backend.received) == 4
    assert max(seen) <= MiB + 64 * KiB  # one body at a time (and what came with the headers)


def test_a_body_that_waits_past_the_body_timeout_is_told_to_retry(tmp_path: Path, backend: Backend) -> None:
    backend.delay = 2.0  # holds the first body longer than the next one may wait
    with in_process(tmp_path, backend, body_timeout=0.5) as gateway, ThreadPoolExecutor(2) as pool:
        first = pool.submit(exchange, gateway.port, post(900 * KiB, b"1" * 900 * KiB))
        time.sleep(0.3)
        exchange(gateway.port, post(900 * KiB, b""), then_close=True)  # a waiter that leaves: no longer waits
        deadline = time.monotonic() + 5
        while gateway.state()[1]:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        waited = exchange(gateway.port, post(900 * KiB, b"2" * 900 * KiB))
        assert status(first.result()) == 200
        assert status(waited) == 503
        assert b"\r\nretry-after: 1\r\n" in waited
        assert b"\r\nconnection: close\r\n" in waited
        assert gateway.settled() == (0, 0, 0)
    assert len(backend.received) == 1
