"""Clients that send slowly, over real sockets: a body that trickles is answered 408 after the body timeout and
its connection closed, and neither it nor many connections trickling headers keep other requests waiting.

The timeouts are set through the environment (SCOREHOST_BODY_TIMEOUT, SCOREHOST_HEADER_TIMEOUT), so that a
server without them still starts, and these tests fail on what it does.
"""

from __future__ import annotations

import contextlib
import resource
import socket
import threading
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from conftest import Server, served

BODY_TIMEOUT = 2.0
# Generous on a busy machine; a server without the bound holds these requests until the client gives up.
PATIENCE = 15.0


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    with served("echo.py", env={"SCOREHOST_BODY_TIMEOUT": str(BODY_TIMEOUT)}) as running:
        yield running


def connect(server: Server) -> socket.socket:
    parsed = urllib.parse.urlsplit(server.url)
    return socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or 80), timeout=PATIENCE * 2)


@dataclass
class Trickler:
    """One connection that sends `head`, then `drip` one byte every `every` seconds, for at most `for_s`; it notes
    when the server answered and when it closed the connection."""

    server: Server
    head: bytes
    drip: bytes = b"x"
    every: float = 0.5
    for_s: float = 2 * PATIENCE
    answer: bytes = b""
    began: float = 0.0
    answered_after: float | None = None
    closed_after: float | None = None
    done: threading.Event = field(default_factory=threading.Event)

    def start(self) -> Trickler:
        self.sock = connect(self.server)
        self.sock.sendall(self.head)
        self.began = time.monotonic()
        threading.Thread(target=self._send, daemon=True).start()
        threading.Thread(target=self._read, daemon=True).start()
        return self

    def _send(self) -> None:
        with contextlib.suppress(OSError):  # the server closed the connection: that is what we wait for
            while not self.done.wait(self.every) and time.monotonic() - self.began < self.for_s:
                self.sock.send(self.drip)

    def _read(self) -> None:
        try:
            while chunk := self.sock.recv(65536):
                if self.answered_after is None:
                    self.answered_after = time.monotonic() - self.began
                self.answer += chunk
        except OSError:
            pass
        self.closed_after = time.monotonic() - self.began
        self.done.set()

    def close(self) -> None:
        self.done.set()
        self.sock.close()


def timed_post(server: Server) -> float:
    began = time.monotonic()
    with server.client(timeout=PATIENCE) as client:
        assert client.post("/score", json={"data": 1}).json() == {"received": "1"}
    return time.monotonic() - began


@pytest.mark.parametrize(
    "head",
    [
        b"POST /score HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n",
        b"POST /score HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n",
    ],
    ids=["content-length", "chunked"],
)
def test_a_trickling_body_gets_408_and_does_not_hold_the_worker(server: Server, head: bytes) -> None:
    trickler = Trickler(server, head, drip=b"x" if b"Content-Length" in head else b"1\r\nx\r\n").start()
    try:
        time.sleep(0.3)  # the trickler holds the worker's one thread now
        waited = timed_post(server)
        assert trickler.done.wait(PATIENCE), "the trickling client's connection was not closed"
    finally:
        trickler.close()
    assert waited < BODY_TIMEOUT + 8  # held at most until the body timeout (on a busy machine)
    assert trickler.answer.startswith(b"HTTP/1.1 408 "), trickler.answer[:200]
    assert b"did not arrive within 2 s of its headers" in trickler.answer
    assert trickler.answered_after is not None
    assert trickler.answered_after >= BODY_TIMEOUT - 0.1
    server.wait_for_log(
        r"the body did not arrive within 2 s \(--body-timeout\): answered 408 and closed the connection"
    )
    server.wait_for_log(r"POST /score 408 ")


def test_headers_and_then_silence_get_408(server: Server) -> None:
    """A client that announces a body and sends none of it."""
    head = b"POST /score HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\n"
    trickler = Trickler(server, head, every=PATIENCE * 4).start()
    try:
        assert trickler.done.wait(PATIENCE)
    finally:
        trickler.close()
    assert trickler.answer.startswith(b"HTTP/1.1 408 ")
    assert timed_post(server) < PATIENCE  # and the worker serves on


def test_one_slow_sender_after_another_each_holds_the_worker_only_until_the_body_timeout(server: Server) -> None:
    for _ in range(2):
        head = b"POST /score HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n"
        trickler = Trickler(server, head).start()
        try:
            assert trickler.done.wait(PATIENCE)
        finally:
            trickler.close()
        assert trickler.answer.startswith(b"HTTP/1.1 408 ")
    assert timed_post(server) < PATIENCE


# --- many connections that trickle their headers ----------------------------------------------------------

TRICKLERS = 600  # more than granian's default of 512 connections per worker


def test_many_connections_trickling_headers_do_not_lock_others_out() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < TRICKLERS + 200:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, TRICKLERS + 500), hard))
    with served("echo.py", env={"SCOREHOST_HEADER_TIMEOUT": "60"}) as server:
        tricklers = []
        try:
            for _ in range(TRICKLERS):
                sock = connect(server)
                sock.sendall(b"POST /score HTTP/1.1\r\nHo")
                tricklers.append(sock)
            time.sleep(0.5)
            for sock in tricklers:  # still sending, a byte at a time
                sock.send(b"s")
            assert timed_post(server) < PATIENCE
        finally:
            for sock in tricklers:
                sock.close()


def test_a_connection_that_trickles_its_headers_is_closed_after_the_header_timeout() -> None:
    with served("echo.py", env={"SCOREHOST_HEADER_TIMEOUT": "1"}) as server:
        trickler = Trickler(server, b"POST /score HTTP/1.1\r\n", drip=b"X", every=0.2).start()
        try:
            assert trickler.done.wait(PATIENCE), "a connection trickling its headers stayed open"
        finally:
            trickler.close()
    assert trickler.closed_after is not None
    assert trickler.closed_after >= 0.9
