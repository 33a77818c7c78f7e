"""What ties a worker to its supervisor: a heartbeat the supervisor reads without the worker's help, and the
worker's exit when the supervisor dies.

The heartbeat is a counter in memory shared across the fork, bumped every second by a Python thread of the
worker. That thread needs the GIL, so a worker stopped by SIGSTOP, or stuck in C code that holds the GIL (where
the run gate's own watchdog cannot run either), stops bumping it, and the supervisor sees the counter stand still.
"""

from __future__ import annotations

import mmap
import os
import struct
import threading
import time
from collections.abc import Callable

from scorehost.system import die_with_parent

__all__ = ["HEARTBEAT_INTERVAL", "HeartbeatBoard", "Lifeline"]

HEARTBEAT_INTERVAL = 1.0  # seconds between beats
_CELL = struct.Struct("Q")


class HeartbeatBoard:
    """One beat counter per worker slot, in anonymous shared memory made before the workers fork."""

    def __init__(self, slots: int) -> None:
        self._cells = mmap.mmap(-1, _CELL.size * slots)  # MAP_SHARED: the forked workers write the same pages

    def read(self, index: int) -> int:
        """The slot's counter (`index` from 0): only whether it changes means anything."""
        return int(_CELL.unpack_from(self._cells, _CELL.size * index)[0])

    def beat(self, index: int) -> None:
        # Only the slot's worker writes its cell. A torn read on the other side looks like a change: a beat.
        _CELL.pack_into(self._cells, _CELL.size * index, (self.read(index) + 1) % 2**64)


class Lifeline:
    """A worker's tie to its supervisor: its slot's heartbeat cell, and the supervisor's pid."""

    def __init__(self, board: HeartbeatBoard, index: int, supervisor: int) -> None:
        self.board, self.index, self.supervisor = board, index, supervisor

    def tie(self) -> None:
        """In the worker, right after the fork: be sent SIGTERM when the supervisor dies (Linux), and leave now if
        it already has. The supervisor is single-threaded, so "the thread that forked us" is the supervisor."""
        die_with_parent(self.supervisor)  # not Linux: the heartbeat's own check is the fallback

    def start_heartbeat(self, orphaned: Callable[[], None]) -> None:
        """Bump the slot's counter every second from a daemon thread; call `orphaned()` once if the supervisor
        dies (where PR_SET_PDEATHSIG is missing, or its SIGTERM went unheeded)."""

        def beat() -> None:
            alone = False
            while True:
                self.board.beat(self.index)
                if not alone and os.getppid() != self.supervisor:
                    alone = True
                    orphaned()
                time.sleep(HEARTBEAT_INTERVAL)

        threading.Thread(target=beat, name="scorehost-heartbeat", daemon=True).start()
