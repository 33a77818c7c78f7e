"""Which workers the kernel hands new connections to.

Each worker accepts on a socket of its own, all in one SO_REUSEPORT group, and the kernel spreads new
connections over the group. A connection handed to a worker that is being replaced is lost if the worker
stops before reading its request (its HTTP server closes connections that have not sent one yet), and one
handed to a worker that is starting waits for its `init()`. So the supervisor keeps a small classic BPF
program on the group (SO_ATTACH_REUSEPORT_CBPF, Linux) that sends new connections only to the sockets of
ready workers, picked at random; when all are ready it steps aside and the kernel spreads them as before.
Where the program cannot be attached (another system, a Unix socket that all workers share, one worker),
nothing is steered.

The program names sockets by their place in the group, which is the kernel's: a socket joins at the end when it
starts listening (and one that leaves would take the last one's place: net/core/sock_reuseport.c). `--reload`
adds sockets for the workers it starts beside the serving ones (`join`), and never closes one while serving, so
the places stay known; a socket that no worker uses is simply never steered to.
"""

from __future__ import annotations

import ctypes
import logging
import socket
from collections.abc import Collection, Sequence

__all__ = ["Steering"]

logger = logging.getLogger("scorehost.supervisor")

_SO_ATTACH_REUSEPORT_CBPF = 51
_LD_RANDOM = (0x20, 0, 0, (-0x1000 + 56) & 0xFFFFFFFF)  # ld [SKF_AD_OFF + SKF_AD_RANDOM]
_MOD_K, _JEQ_K, _RET_K = 0x94, 0x15, 0x06
_ANY = 0xFFFFFFFF  # an index past the group's end: the kernel falls back to its own spread


class _Instruction(ctypes.Structure):
    _fields_ = (("code", ctypes.c_uint16), ("jt", ctypes.c_uint8), ("jf", ctypes.c_uint8), ("k", ctypes.c_uint32))


class _Program(ctypes.Structure):
    _fields_ = (("len", ctypes.c_ushort), ("filter", ctypes.POINTER(_Instruction)))


class Steering:
    """Steers new connections over `sockets` (listening in this order, one SO_REUSEPORT group)."""

    def __init__(self, sockets: Sequence[socket.socket]) -> None:
        distinct = len({id(sock) for sock in sockets}) == len(sockets)
        inet = bool(sockets) and sockets[0].family in (socket.AF_INET, socket.AF_INET6)
        self._members = list(sockets) if inet and distinct else []  # the group, in the kernel's order
        self._broken = False
        self._serving: frozenset[int] | None = None  # None: every socket, as the kernel spreads them

    @property
    def active(self) -> bool:
        """Whether new connections can be kept away from a socket."""
        return len(self._members) > 1 and not self._broken

    def join(self, sock: socket.socket) -> None:
        """`sock` is about to listen in the group, and so to take its last place (steer away from it first)."""
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            self._members.append(sock)
            self._serving = frozenset({-1})  # the program must be made again

    def serve(self, sockets: Collection[socket.socket]) -> None:
        """Hand new connections only to `sockets`; with all or none of the group's, to every one."""
        self.serve_only({place for place, sock in enumerate(self._members) if sock in sockets})

    def serve_only(self, indices: set[int]) -> None:
        """Hand new connections only to the sockets at `indices` (from 0); with all or none of them, to every one."""
        count = len(self._members)
        target = None if len(indices) in (0, count) else frozenset(indices)
        if count < 2 or self._broken or target == self._serving:
            return
        instructions = [(_RET_K, 0, 0, _ANY)] if target is None else _spread_over(sorted(target))
        code = (_Instruction * len(instructions))(*(_Instruction(*step) for step in instructions))
        program = _Program(len(instructions), ctypes.cast(code, ctypes.POINTER(_Instruction)))
        try:
            self._members[0].setsockopt(socket.SOL_SOCKET, _SO_ATTACH_REUSEPORT_CBPF, bytes(program))
        except OSError as error:
            logger.debug("new connections cannot be steered between workers here: %s", error)
            self._broken = True
            return
        self._serving = target


def _spread_over(allowed: list[int]) -> list[tuple[int, int, int, int]]:
    """A program that returns one of `allowed`, at random: A = random % len; then A -> allowed[A]."""
    steps = [_LD_RANDOM, (_MOD_K, 0, 0, len(allowed))]
    for position, index in enumerate(allowed[:-1]):
        steps += [(_JEQ_K, 0, 1, position), (_RET_K, 0, 0, index)]
    steps.append((_RET_K, 0, 0, allowed[-1]))
    return steps
