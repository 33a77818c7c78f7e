"""Listening sockets: one per worker slot, all on one port through SO_REUSEPORT, or one Unix socket.

The supervisor owns them, so a slot's socket (and the connections waiting in its backlog) outlives
a worker that dies: its replacement accepts them. The kernel spreads new TCP connections across
slots; the workers share a Unix socket, and whichever is free accepts.
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import stat
from dataclasses import dataclass

from scorehost.errors import PortInUse, ScorehostError

__all__ = ["UnixSocketFile", "bind_refusal", "bind_sockets", "bind_unix_socket"]


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
        raise bind_refusal(exc, host, port) from None
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
        raise bind_refusal(exc, host, port) from None
    return sockets


@dataclass(frozen=True)
class UnixSocketFile:
    """The file a Unix socket was bound to, removed on shutdown unless something else replaced it since."""

    path: str
    inode: int

    def remove(self) -> None:
        with contextlib.suppress(OSError):
            if os.stat(self.path).st_ino == self.inode:
                os.unlink(self.path)


def bind_unix_socket(path: str, backlog: int = 2048) -> tuple[socket.socket, UnixSocketFile | None]:
    """Listen on the Unix socket `path`, a file only this user may connect to (mode 0600); `@NAME` is Linux's
    abstract namespace (no file: any process of this network namespace may connect, as to a loopback port).

    A socket file left by a server that is gone is replaced; one that a server still listens on, or a file
    that is not a socket, is never touched."""
    abstract = path.startswith("@")
    address = "\0" + path[1:] if abstract else path
    if len(address.encode()) > 107:  # sun_path holds 108 bytes, with the terminating NUL
        raise PortInUse(f"The Unix socket path {path!r} is longer than 107 bytes; choose a shorter --uds path.")
    if not abstract:
        _clear_stale(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    mask = os.umask(0o177)  # the file is born 0600: no moment when other users could connect
    try:
        sock.bind(address)
        sock.listen(backlog)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise PortInUse(f"Another server listens on the Unix socket {path}; choose another --uds path.") from None
        raise PortInUse(f"Cannot listen on the Unix socket {path}: {exc.strerror}.") from None
    finally:
        os.umask(mask)
    sock.set_inheritable(True)
    return sock, None if abstract else UnixSocketFile(path, os.stat(path).st_ino)


def _clear_stale(path: str) -> None:
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return
    except OSError as exc:
        raise PortInUse(f"Cannot use {path} as a Unix socket: {exc.strerror}.") from None
    if not stat.S_ISSOCK(mode):
        raise PortInUse(f"{path} exists and is not a Unix socket; choose another --uds path (it is left as it is).")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(path)
    except ConnectionRefusedError:  # nobody listens: a leftover of a server that is gone
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        return
    except OSError as exc:
        raise PortInUse(f"Cannot use {path} as a Unix socket: {exc.strerror}.") from None
    finally:
        probe.close()
    raise PortInUse(f"Another server listens on the Unix socket {path}; choose another --uds path or stop it.")


def bind_refusal(
    exc: OSError, host: str, port: int, *, where: str = "", option: str = "--port", choose: str = ""
) -> ScorehostError:
    """Why `host:port` cannot be listened on, naming the option that changes it (`where` names the port for the
    reader, e.g. "the gateway's port 5080 on 127.0.0.1"; `choose` how to pick another)."""
    where = where or f"Port {port} on {host}"
    choose = choose or f"{option} (or {option} 0 for any free port)"
    if exc.errno == errno.EADDRINUSE:
        return PortInUse(
            f"{where} is already in use by another process. Choose another with {choose}, "
            f"or stop the other server (`ss -ltnp 'sport = :{port}'` shows it)."
        )
    if exc.errno == errno.EACCES:
        return PortInUse(f"Not allowed to listen on {where}: ports below 1024 need privileges; use {option}.")
    if exc.errno == errno.EADDRNOTAVAIL:
        return PortInUse(f"Cannot listen on {host}: it is not an address of this machine; check --host.")
    return PortInUse(f"Cannot listen on {where}: {exc.strerror}; use {option}.")
