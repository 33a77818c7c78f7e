"""Listening sockets: one per worker slot, all on one port through SO_REUSEPORT.

The supervisor owns them, so a slot's socket (and the connections waiting in its backlog) outlives
a worker that dies: its replacement accepts them. The kernel spreads new connections across slots.
"""

from __future__ import annotations

import errno
import socket

from scorehost.errors import ScorehostError

__all__ = ["PortInUse", "bind_sockets"]


class PortInUse(ScorehostError, OSError):
    """Another process listens on the port."""


def bind_sockets(host: str, port: int, count: int, backlog: int = 2048) -> list[socket.socket]:
    """Bind `count` listening sockets to host:port (port 0 picks one free port for all of them)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # A plain bind first: SO_REUSEPORT alone would quietly share the port with another server.
    probe = socket.socket(family, socket.SOCK_STREAM)
    probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        probe.bind((host, port))
    except OSError as exc:
        probe.close()
        raise _explain(exc, host, port) from None
    port = probe.getsockname()[1]
    probe.close()
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(family, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sockets.append(sock)
            sock.bind((host, port))
            sock.listen(backlog)
            sock.set_inheritable(True)
    except OSError as exc:
        for sock in sockets:
            sock.close()
        raise _explain(exc, host, port) from None
    return sockets


def _explain(exc: OSError, host: str, port: int) -> ScorehostError:
    if exc.errno == errno.EADDRINUSE:
        return PortInUse(
            f"Port {port} on {host} is already in use by another process. Choose another with --port "
            f"(or --port 0 for any free port), or stop the other server (`ss -ltnp 'sport = :{port}'` shows it)."
        )
    if exc.errno == errno.EACCES:
        return PortInUse(f"Not allowed to listen on port {port}: ports below 1024 need privileges; use --port.")
    if exc.errno == errno.EADDRNOTAVAIL:
        return PortInUse(f"Cannot listen on {host}: it is not an address of this machine; check --host.")
    return PortInUse(f"Cannot listen on {host}:{port}: {exc.strerror}.")
