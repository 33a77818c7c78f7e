"""Counting where new connections land in a group of listening sockets (connection steering tests)."""

from __future__ import annotations

import collections
import socket

__all__ = ["accepted"]


def accepted(sockets: list[socket.socket], connections: int) -> dict[int, int]:
    """Open `connections` connections to the group's port; how many each socket (by position) got."""
    port = sockets[0].getsockname()[1]
    clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(connections)]
    counts: collections.Counter[int] = collections.Counter()
    for index, sock in enumerate(sockets):
        sock.setblocking(False)
        while True:
            try:
                connection, _ = sock.accept()
            except BlockingIOError:
                break
            connection.close()
            counts[index] += 1
    for client in clients:
        client.close()
    assert sum(counts.values()) == connections
    return dict(counts)
