"""`scorehost serve --uds`: the same server on a Unix socket, for a proxy on the same machine."""

from __future__ import annotations

import os
import signal
import socket
import stat
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import Server

Serve = Callable[..., Server]


@pytest.fixture
def sock_path() -> Iterator[str]:
    # Short on purpose: a socket path holds at most 107 bytes, and pytest's tmp_path can be longer.
    folder = Path(f"/tmp/sh-uds-{os.getpid()}-{threading.get_ident() % 10000}")
    folder.mkdir(exist_ok=True)
    yield str(folder / "s.sock")
    for leftover in folder.iterdir():
        leftover.unlink()
    folder.rmdir()


def test_serves_scores_on_a_private_socket_and_removes_it_on_exit(serve: Serve, sock_path: str) -> None:
    server = serve("echo.py", "--uds", sock_path, "--workers", "2")
    mode = os.stat(sock_path).st_mode
    assert stat.S_ISSOCK(mode)
    assert stat.S_IMODE(mode) == 0o600  # only this user may connect
    with server.client() as client:
        assert client.get("/").text == "Healthy"
        response = client.post("/score", json={"data": [1, 2]})
        assert response.status_code == 200
        assert response.json() == {"received": "[1,2]"}
    assert "--port" not in server.log  # no TCP listener is announced
    assert server.stop() == 0
    assert not os.path.exists(sock_path)


def test_abstract_socket(serve: Serve) -> None:
    name = f"@scorehost-test-{os.getpid()}-{time.monotonic_ns()}"
    server = serve("echo.py", "--uds", name)
    assert server.url == f"unix:{name}"
    with server.client() as client:
        assert client.post("/score", json={"data": "x"}).json() == {"received": '"x"'}


def test_a_socket_left_by_a_dead_server_is_replaced(serve: Serve, sock_path: str) -> None:
    leftover = socket.socket(socket.AF_UNIX)
    leftover.bind(sock_path)
    leftover.close()  # the file stays, nobody listens: what a SIGKILLed server leaves
    serve("echo.py", "--uds", sock_path)


def test_a_live_server_or_a_plain_file_is_never_replaced(serve: Serve, sock_path: str) -> None:
    first = serve("echo.py", "--uds", sock_path)
    second = serve("echo.py", "--uds", sock_path, ready=False)
    assert second.wait_exit(60) == 1
    assert f"Another server listens on the Unix socket {sock_path}; choose another --uds path" in second.log
    with first.client() as client:  # the first one is untouched
        assert client.get("/ready").status_code == 200

    plain = Path(sock_path).with_name("notes.txt")
    plain.write_text("keep me")
    third = serve("echo.py", "--uds", str(plain), ready=False)
    assert third.wait_exit(60) == 1
    assert f"{plain} exists and is not a Unix socket" in third.log
    assert plain.read_text() == "keep me"


def test_a_path_too_long_for_a_socket_is_refused(serve: Serve, tmp_path: Path) -> None:
    path = "/tmp/" + "x" * 120 + ".sock"
    server = serve("echo.py", "--uds", path, ready=False)
    assert server.wait_exit(60) == 1
    assert "longer than 107 bytes; choose a shorter --uds path" in server.log


def test_a_killed_worker_is_replaced_and_the_shared_socket_keeps_serving(serve: Serve, sock_path: str) -> None:
    server = serve("hangs.py", "--uds", sock_path, "--workers", "2")
    with server.client() as client:
        seen: set[int] = set()
        deadline = time.monotonic() + 20
        while len(seen) < 2:  # connections go to whichever worker accepts first
            assert time.monotonic() < deadline, f"only {seen} answered:\n{server.log}"
            seen.add(client.post("/score", json={"data": "ok"}, headers={"Connection": "close"}).json()["pid"])
        victim = min(seen)
        os.kill(victim, signal.SIGKILL)
        server.wait_for_log(rf"pid {victim}, up [\d.]+ s\) was killed by SIGKILL; restarting it")
        answered = set()
        deadline = time.monotonic() + 20
        while len(answered - seen) < 1 or len(answered) < 2:
            assert time.monotonic() < deadline, f"answered {answered}:\n{server.log}"
            response = client.post("/score", json={"data": "ok"}, headers={"Connection": "close"})
            assert response.status_code == 200, response.text
            answered.add(response.json()["pid"])
        assert victim not in answered
