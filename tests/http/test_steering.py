"""Steering new connections between the workers' sockets, with real sockets on 127.0.0.1."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
from _sockets import accepted

from scorehost.http.steering import Steering
from scorehost.sockets import bind_sockets


@pytest.fixture
def group() -> Iterator[list[socket.socket]]:
    sockets = bind_sockets("127.0.0.1", 0, 3)
    for sock in sockets:
        sock.setblocking(False)
    yield sockets
    for sock in sockets:
        sock.close()


def test_new_connections_go_only_where_they_are_steered(group: list[socket.socket]) -> None:
    steering = Steering(group)
    assert steering.active
    steering.serve_only({0, 2})
    assert set(accepted(group, 60)) == {0, 2}
    steering.serve_only({1})
    assert set(accepted(group, 60)) == {1}
    steering.serve_only({0, 1, 2})  # all of them: the kernel's own spread again
    assert set(accepted(group, 60)) == {0, 1, 2}
    steering.serve_only(set())  # none ready: every socket too, rather than none
    assert set(accepted(group, 60)) == {0, 1, 2}


def test_a_shared_unix_socket_or_a_single_socket_is_not_steered() -> None:
    unix = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    single = bind_sockets("127.0.0.1", 0, 1)
    try:
        assert not Steering([unix, unix]).active
        assert not Steering(single).active
    finally:
        unix.close()
        single[0].close()
