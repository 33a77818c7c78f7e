"""Find which of this process's TCP connections an answer went out on, and stop reading from it.

granian owns its connections' sockets and tells Python neither their descriptors nor the client's port, so
the one way to reach the connection of a request is to watch the kernel's counters: the connection whose
count of bytes written grows by the answer's size while the answer goes out is the request's. Linux only
(TCP_INFO, SIOCOUTQ); elsewhere, and on Unix sockets, nothing is found.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import socket
import struct
import sys
import termios
import time
from collections.abc import Callable

__all__ = ["shut_reading_after"]

logger = logging.getLogger("scorehost.worker")

_FD_FOLDER = "/proc/self/fd"
_TCP_INFO_SIZE = 128
_BYTES_ACKED_AT = 120  # struct tcp_info: tcpi_bytes_acked (Linux 4.1 and later)
_POLL_S = 0.005
_POLL_FOR_S = 0.5  # granian writes an answer on its own thread, within microseconds when it is idle
_HEADER_SLACK = 256  # what granian and hyper add to an answer's head: the server and date headers


def shut_reading_after(send: Callable[[], None], local_port: int, peer: str, size: int) -> bool:
    """Call `send` (which writes an answer of at least `size` bytes to a client at `peer` on `local_port`) and
    shut the reading side of the connection it went out on: a read blocked on it returns. True if found."""
    if not sys.platform.startswith("linux"):
        send()
        return False
    before = _written(local_port, peer)
    send()
    deadline = time.monotonic() + _POLL_FOR_S
    grown: list[int] = []
    while not grown and time.monotonic() < deadline:
        time.sleep(_POLL_S)
        after = _written(local_port, peer)
        grown = [fd for fd, count in after.items() if size <= count - before.get(fd, count) <= size + _HEADER_SLACK]
    if len(grown) != 1:  # none (a Unix socket, the client gone) or an equal answer at the same moment elsewhere
        return False
    return _shut_reading(grown[0], local_port, peer)


def _written(local_port: int, peer: str) -> dict[int, int]:
    """Bytes written so far on each TCP connection of this process between `local_port` and `peer`."""
    counts: dict[int, int] = {}
    with contextlib.suppress(OSError):
        names = os.listdir(_FD_FOLDER)
        for name in names:
            fd = int(name)
            sock = _matching(fd, local_port, peer)
            if sock is None:
                continue
            try:
                info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, _TCP_INFO_SIZE)
                unacked = fcntl.ioctl(fd, termios.TIOCOUTQ, b"\0\0\0\0")
                if len(info) >= _BYTES_ACKED_AT + 8:
                    counts[fd] = struct.unpack_from("Q", info, _BYTES_ACKED_AT)[0] + struct.unpack("i", unacked)[0]
            except OSError:
                pass
            finally:
                sock.detach()  # the descriptor stays granian's
    return counts


def _matching(fd: int, local_port: int, peer: str) -> socket.socket | None:
    """A socket object borrowing `fd` if it is a TCP connection between `local_port` and `peer` (detach it)."""
    try:
        sock = socket.socket(fileno=fd)
    except OSError:  # not a socket, or closed meanwhile
        return None
    try:
        tcp = sock.type == socket.SOCK_STREAM and sock.family in (socket.AF_INET, socket.AF_INET6)
        if tcp and sock.getsockname()[1] == local_port and _ip(sock.getpeername()[0]) == _ip(peer):
            return sock
    except OSError:  # the listening socket (no peer), or a connection that just closed
        pass
    sock.detach()
    return None


def _shut_reading(fd: int, local_port: int, peer: str) -> bool:
    sock = _matching(fd, local_port, peer)  # again: the descriptor could have been closed and reused meanwhile
    if sock is None:
        return False
    try:
        sock.shutdown(socket.SHUT_RD)
        return True
    except OSError:
        return False
    finally:
        sock.detach()


def _ip(address: str) -> str:
    return address.removeprefix("::ffff:")  # an IPv4 client on a dual-stack socket
