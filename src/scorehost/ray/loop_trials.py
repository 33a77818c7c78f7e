"""Whether the replica's front answers on its event loop, judged by calls made there.

A call timed on a pool thread reads slow under load even when the script is quick: that thread shares the GIL
with the event loop and Ray's own threads, and each hand-over can wait out Python's switch interval (5 ms). On
the benchmark model at 16 concurrent requests, a 0.4 ms predict() read over 2 ms on the pool, so the front never
came to the loop. The pool's times therefore only say whether the loop is worth a try (under `TRY_MAX_S`); the
calls made on the loop then decide, over the last `ROUND` of them, by the median of the CPU time each took on the
loop's thread (under `INLINE_MAX_S`). Their wall-clock time cannot say it alone: on a machine whose cores are all
busy (the load generator beside the cluster, HAProxy, other replicas), half the answers of that same model read
2-7 ms, preempted. The wall-clock time still bounds what the loop takes on, for scripts that wait rather than
compute (a model's own threads, a remote call): a median under `WALL_MAX_S`, and no one call past `SLOW_CALL_S`,
which sends the script back to the pool at once. The loop is tried again `RETRY_S` after the script left it.
"""

from __future__ import annotations

import statistics
from collections import deque

from scorehost.http.batching.quick import INLINE_MAX_S, CallTimes

__all__ = ["RETRY_S", "ROUND", "SLOW_CALL_S", "TRY_MAX_S", "WALL_MAX_S", "LoopTrials"]

TRY_MAX_S = 0.025  # a script slower than this on the pool never holds the loop, not even for a try
WALL_MAX_S = 0.01
SLOW_CALL_S = 0.1
ROUND = 9
RETRY_S = 5.0


class LoopTrials:
    """Where the next answer is made: `wants_loop()` says, and the times of the calls made since teach it."""

    __slots__ = ("_cpu", "_next_round", "_pool", "_quick", "_round_open", "_wall")

    def __init__(self, warm_up: int) -> None:
        self._pool = CallTimes(warm_up=warm_up)  # the script's first calls (caches filling) are made on the pool
        self._cpu: deque[float] = deque(maxlen=ROUND)
        self._wall: deque[float] = deque(maxlen=ROUND)
        self._round_open = False
        self._quick = False  # the last ROUND calls on the loop say so
        self._next_round = 0.0

    @property
    def on_loop(self) -> bool:
        """Whether answers belong on the loop now: a round is trying it, or the calls made there are quick."""
        return self._round_open or self._quick

    def wants_loop(self, now: float) -> bool:
        """Whether this answer belongs on the loop; opens a round when one is due (`now`: time.monotonic())."""
        if self.on_loop:
            return True
        if now < self._next_round or self._pool.count < self._pool.warm_up or self._pool.average >= TRY_MAX_S:
            return False
        self._round_open = True
        self._cpu.clear()
        self._wall.clear()
        return True

    def add_pool(self, seconds: float) -> None:
        """A call made on the pool took `seconds` (run()'s wall-clock time)."""
        self._pool.add(seconds)

    def add_loop(self, seconds: float, cpu_seconds: float, now: float) -> None:
        """A call made on the loop took `seconds` (run()'s wall-clock time) and `cpu_seconds` of the loop's thread."""
        self._wall.append(seconds)
        self._cpu.append(cpu_seconds)
        if seconds >= SLOW_CALL_S:
            self._quick = self._round_open = False
        elif len(self._wall) == ROUND:
            cpu, wall = statistics.median(self._cpu), statistics.median(self._wall)
            self._quick = cpu < INLINE_MAX_S and wall < WALL_MAX_S
            self._round_open = False
        if not self.on_loop:
            self._next_round = now + RETRY_S
