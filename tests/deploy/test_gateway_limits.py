"""What a client may hold of the gateway, for real: keys checked from the headers before any body, bounded
body memory, header, body and idle timeouts, the connection cap, the descriptor limit, and workers that
exit with their supervisor. `scorehost gateway` processes and raw sockets on 127.0.0.1."""

from __future__ import annotations

import contextlib
import json
import os
import re
import select
import signal
import socket
import threading
import time
import urllib.parse
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from click.testing import CliRunner
from test_gateway import KEY_A, MAX_BODY, Backend, Gateway, http_client_post, one, rss_bytes

from scorehost.cli import cli

MiB = 1024 * 1024
HEADER_S, BODY_S, IDLE_S = 1.0, 1.0, 2.0  # short, for the module's gateway


@pytest.fixture(scope="module")
def backend() -> Iterator[Backend]:
    started = Backend("blue")
    yield started
    started.close()


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory, backend: Backend) -> Iterator[Gateway]:
    times = ["--header-timeout", str(HEADER_S), "--body-timeout", str(BODY_S), "--idle-timeout", str(IDLE_S)]
    started = Gateway(tmp_path_factory.mktemp("gateway-limits"), *times)
    started.publish({"locked": one(backend.url, auth="key"), "open": one(backend.url)})
    yield started
    started.stop()


def connect(gateway: Gateway, timeout: float = 10) -> socket.socket:
    parts = urllib.parse.urlsplit(gateway.url)
    return socket.create_connection((parts.hostname, parts.port), timeout=timeout)


def read_until_closed(sock: socket.socket, timeout: float = 10) -> bytes:
    """All the gateway sends until it closes the connection (a reset counts as closed); fails past `timeout`."""
    sock.settimeout(timeout)
    received = b""
    with contextlib.suppress(ConnectionResetError):
        while chunk := sock.recv(65536):
            received += chunk
    return received


def statuses(received: bytes) -> list[int]:
    return [int(status) for status in re.findall(rb"HTTP/1.1 (\d{3}) ", received)]


def post_head(path: str, length: int, *lines: bytes) -> bytes:
    extra = b"".join(line + b"\r\n" for line in lines)
    return b"POST %s HTTP/1.1\r\nhost: x\r\ncontent-length: %d\r\n%s\r\n" % (path.encode(), length, extra)


AUTH = b"authorization: Bearer " + KEY_A.encode()


# --- refused from the headers, before the body ---------------------------------------------------------------


def test_a_request_without_its_key_is_refused_before_its_body_is_read(gateway: Gateway) -> None:
    """The answer comes from the headers alone: no byte of the (declared) body is sent, yet the 401 arrives
    and the connection closes. A small body is read and dropped instead, and the connection kept."""
    for path, status in (("/endpoints/locked/score", 401), ("/endpoints/nope/score", 404)):
        with connect(gateway) as raw:
            raw.sendall(post_head(path, MAX_BODY - 1, b"authorization: Bearer wrong"))
            received = read_until_closed(raw)
        assert statuses(received) == [status], received  # not 408: the body was never waited for
        assert b"\r\nconnection: close\r\n" in received
    with connect(gateway) as raw:
        raw.sendall(post_head("/endpoints/locked/score", 2) + b"{}" + b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
        received = b""
        while received.count(b"HTTP/1.1 ") < 2:
            received += raw.recv(65536)
    assert statuses(received) == [401, 200]
    assert b"connection: close" not in received


def test_answers_before_a_refusal_still_come_in_order(gateway: Gateway, backend: Backend) -> None:
    with connect(gateway) as raw:
        raw.sendall(
            post_head("/endpoints/locked/score", 1, AUTH) + b"1" + post_head("/endpoints/locked/score", 10 * MiB)
        )
        received = read_until_closed(raw)
    assert statuses(received) == [200, 401]
    assert backend.received[-1][2] == b"1"


def test_expect_100_continue_is_granted_only_after_the_key(gateway: Gateway) -> None:
    with connect(gateway) as raw:
        raw.sendall(post_head("/endpoints/locked/score", 10, b"expect: 100-continue", b"authorization: Bearer no"))
        received = read_until_closed(raw)
    assert statuses(received) == [401]  # and no 100 Continue before it
    with connect(gateway) as raw:
        raw.sendall(post_head("/endpoints/locked/score", 2, b"expect: 100-continue", AUTH))
        assert raw.recv(100) == b"HTTP/1.1 100 Continue\r\n\r\n"
        raw.sendall(b"{}")
        assert raw.recv(1000).startswith(b"HTTP/1.1 200 OK\r\n")


def test_headers_past_64_kib_are_431(gateway: Gateway) -> None:
    """httptools reads headers without a bound of its own: 64 KiB of them, then 431 and closed."""
    with connect(gateway) as raw:
        raw.sendall(b"GET / HTTP/1.1\r\nhost: x\r\n")
        with contextlib.suppress(OSError):  # closed while the rest is still coming
            for _ in range(100):
                raw.sendall(b"x-big: " + b"y" * 1000 + b"\r\n")
        received = read_until_closed(raw)
    assert statuses(received) == [431]
    assert b"\r\nconnection: close\r\n" in received


# --- timeouts ----------------------------------------------------------------------------------------------------


def test_half_a_request_line_is_408_and_closed_after_the_header_timeout(gateway: Gateway) -> None:
    """As 300 connections each sending half a request line would hold their descriptors for good."""
    sockets = [connect(gateway) for _ in range(50)]
    try:
        begin = time.monotonic()
        for raw in sockets:
            raw.sendall(b"POST /endpoints/open/sc")
        for raw in sockets:
            received = read_until_closed(raw)
            assert statuses(received) == [408], received
            assert b"\r\nconnection: close\r\n" in received
            assert "headers did not arrive" in json.loads(received.partition(b"\r\n\r\n")[2])["error"]
        assert HEADER_S <= time.monotonic() - begin < HEADER_S + 5
    finally:
        for raw in sockets:
            raw.close()


def test_headers_trickled_in_are_cut_off_too(gateway: Gateway) -> None:
    """The header timeout runs from the request's first byte: bytes that keep coming do not extend it."""
    with connect(gateway) as raw:
        raw.sendall(b"GET / HTTP/1.1\r\n")
        begin = time.monotonic()
        while time.monotonic() - begin < HEADER_S + 5:
            readable, _, _ = select.select([raw], [], [], 0.1)
            if readable:
                break
            raw.sendall(b"x-slow: 1\r\n")
        assert statuses(read_until_closed(raw)) == [408]
        assert time.monotonic() - begin < HEADER_S + 3


def test_a_connection_that_sends_nothing_is_closed_without_an_answer(gateway: Gateway) -> None:
    with connect(gateway) as raw:
        begin = time.monotonic()
        assert read_until_closed(raw) == b""
        assert HEADER_S <= time.monotonic() - begin < HEADER_S + 5


def test_a_stalled_body_is_408(gateway: Gateway, backend: Backend) -> None:
    count = len(backend.received)
    with connect(gateway) as raw:
        raw.sendall(post_head("/endpoints/open/score", 100) + b"x" * 10)
        received = read_until_closed(raw)
    assert statuses(received) == [408]
    assert b"\r\nconnection: close\r\n" in received
    assert b"content-type: application/json\r\n" in received
    assert len(backend.received) == count  # never forwarded


def test_a_request_cut_short_is_400_and_never_forwarded(gateway: Gateway, backend: Backend) -> None:
    """Fewer body bytes than declared, then FIN: not a request to forward. Answers owed before it still come."""
    count = len(backend.received)
    for sent in (
        post_head("/endpoints/open/score", 100) + b"x" * 10,
        post_head("/endpoints/open/score", 1) + b"1" + b"GET / HTTP/1.1\r\nhost: x\r\n",
    ):
        with connect(gateway) as raw:
            raw.sendall(sent)
            raw.shutdown(socket.SHUT_WR)
            received = read_until_closed(raw)
        assert statuses(received)[-1] == 400, received
        assert b"the connection ended in the middle of the request" in received
    assert statuses(received) == [200, 400]  # the complete request before it was answered first
    assert len(backend.received) == count + 1


def test_an_idle_keep_alive_connection_is_closed(gateway: Gateway) -> None:
    with connect(gateway) as raw:
        for _ in range(2):  # kept alive between requests
            raw.sendall(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
            assert raw.recv(1000).startswith(b"HTTP/1.1 200 OK\r\n")
        begin = time.monotonic()
        assert read_until_closed(raw) == b""  # closed without a word: no request was pending
        assert IDLE_S - 0.25 <= time.monotonic() - begin < IDLE_S + 5  # counted from the answer's write


# --- memory ------------------------------------------------------------------------------------------------------


class PeakRSS:
    """The highest resident memory of `pid` while the block runs, sampled every 10 ms."""

    def __init__(self, pid: int) -> None:
        self.pid, self.peak = pid, rss_bytes(pid)
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._done.wait(0.01):
            self.peak = max(self.peak, rss_bytes(self.pid))

    def __enter__(self) -> PeakRSS:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join()


def test_many_big_uploads_keep_the_gateways_memory_bounded(tmp_path: Path) -> None:
    """16 keyless uploads of 30 MiB cost nothing (refused from their headers); 8 keyed ones are read two at
    a time within --max-buffered 64 MiB, all answered; the memory is handed back afterwards."""
    slow = Backend("slow", delay=0.2, keep=False)
    gateway = Gateway(tmp_path, "--max-body-size", str(32 * MiB), "--max-buffered", str(64 * MiB))
    try:
        gateway.publish({"big": one(slow.url, auth="key")})
        body = b"b" * (30 * MiB)
        assert http_client_post(gateway.url, "/endpoints/big/score", b"{}")[0] == 401  # warmed up
        before = rss_bytes(gateway.process.pid)

        def keyless(_: int) -> list[int]:
            with connect(gateway, timeout=30) as raw:
                raw.sendall(post_head("/endpoints/big/score", len(body)))
                with contextlib.suppress(OSError):  # refused: the gateway reads none of it
                    raw.sendall(body)
                with contextlib.suppress(OSError):
                    return statuses(read_until_closed(raw))
                return []

        with PeakRSS(gateway.process.pid) as peak, ThreadPoolExecutor(16) as pool:
            answers = list(pool.map(keyless, range(16)))
        assert all(answer in ([401], []) for answer in answers), answers
        assert peak.peak - before < 16 * MiB

        def keyed(_: int) -> int:
            with connect(gateway, timeout=60) as raw:
                raw.sendall(post_head("/endpoints/big/score", len(body), AUTH) + body)
                return statuses(read_until_closed_or_answered(raw))[0]

        with PeakRSS(gateway.process.pid) as peak, ThreadPoolExecutor(8) as pool:
            assert list(pool.map(keyed, range(8))) == [200] * 8
        assert len(slow.received) == 8
        # Two bodies at a time (and one join of a body into the request): 8 at once would be 240 MiB and more.
        assert peak.peak - before < 2 * 64 * MiB + 48 * MiB, (peak.peak - before) / MiB
        deadline = time.monotonic() + 10
        while rss_bytes(gateway.process.pid) - before > 64 * MiB:  # handed back by the worker's sweep
            assert time.monotonic() < deadline, (rss_bytes(gateway.process.pid) - before) / MiB
            time.sleep(0.1)
    finally:
        gateway.stop()
        slow.close()


def read_until_closed_or_answered(raw: socket.socket) -> bytes:
    """One whole answer, on a connection that stays open."""
    raw.settimeout(60)
    received = b""
    while b"\r\n\r\n" not in received or len(received.partition(b"\r\n\r\n")[2]) < _length(received):
        chunk = raw.recv(65536)
        if not chunk:
            break
        received += chunk
    return received


def _length(received: bytes) -> int:
    match = re.search(rb"content-length: (\d+)", received, re.IGNORECASE)
    return int(match.group(1)) if match else 0


# --- connections, descriptors, workers ---------------------------------------------------------------------------


def test_connections_past_the_cap_are_closed_and_logged(tmp_path: Path) -> None:
    gateway = Gateway(tmp_path, "--max-connections", "4")
    held = [connect(gateway) for _ in range(4)]
    try:
        for raw in held:  # each one answered: all four are in
            raw.sendall(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
            assert raw.recv(1000).startswith(b"HTTP/1.1 200 OK\r\n")
        with connect(gateway) as extra:
            extra.sendall(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
            assert read_until_closed(extra, timeout=5) == b""
        gateway.wait_for_log(r"has 4 connections open, its --max-connections: new ones are closed at once")
        held.pop().close()
        deadline = time.monotonic() + 10
        while True:  # once the gateway has seen the close, a new connection is in again
            with connect(gateway) as again, contextlib.suppress(ConnectionResetError):
                again.sendall(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
                if again.recv(1000).startswith(b"HTTP/1.1 200 OK\r\n"):
                    break
            assert time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        for raw in held:
            raw.close()
        gateway.stop()


def test_the_limits_are_flags_and_a_budget_below_the_body_limit_is_refused(tmp_path: Path) -> None:
    shown = CliRunner().invoke(cli, ["gateway", "--help"]).output
    for flag in ("--header-timeout", "--body-timeout", "--idle-timeout", "--max-connections", "--max-buffered"):
        assert flag in shown
    done = CliRunner().invoke(
        cli, ["gateway", "--home", str(tmp_path), "--max-body-size", "1000", "--max-buffered", "999"]
    )
    assert done.exit_code == 2
    assert "--max-buffered (999 bytes) must be at least --max-body-size (1000 bytes)" in done.output


def _soft_descriptor_limit(pid: int) -> tuple[int, int]:
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max open files"):
            soft, hard = line.split()[3:5]
            return int(soft), int(hard) if hard.isdigit() else -1
    raise AssertionError("no 'Max open files' in /proc/<pid>/limits")


@pytest.mark.skipif(not Path("/proc/self/limits").exists(), reason="needs Linux's /proc")
def test_the_soft_descriptor_limit_is_raised_to_the_hard_one(tmp_path: Path) -> None:
    hard = _soft_descriptor_limit(os.getpid())[1]
    if 0 <= hard <= 256:
        pytest.skip(f"the hard descriptor limit here is {hard}: nothing to raise")
    gateway = Gateway(tmp_path, wrapper=("sh", "-c", 'ulimit -Sn 256 && exec "$@"', "sh"))
    try:
        soft, hard = _soft_descriptor_limit(gateway.process.pid)
        assert soft == hard or (hard == -1 and soft > 256)
    finally:
        gateway.stop()


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            fields = stat.read_text().rpartition(")")[2].split()
            if int(fields[1]) == pid and fields[0] != "Z":
                found.append(int(stat.parent.name))
    return found


def _running(pid: int) -> bool:
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z"
    return False


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux's /proc")
def test_workers_exit_when_their_supervisor_is_killed(tmp_path: Path) -> None:
    gateway = Gateway(tmp_path, "--workers", "2")
    try:
        deadline = time.monotonic() + 10
        while len(workers := _children(gateway.process.pid)) < 2:
            assert time.monotonic() < deadline, workers
            time.sleep(0.05)
        gateway.process.kill()  # kill -9: no chance to pass anything on
        gateway.process.wait(10)
        deadline = time.monotonic() + 10
        while alive := [pid for pid in workers if _running(pid)]:
            assert time.monotonic() < deadline, f"workers {alive} still serve with no supervisor"
            time.sleep(0.05)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(gateway.process.pid, signal.SIGKILL)  # the workers too, should the test fail
        gateway.stop()
