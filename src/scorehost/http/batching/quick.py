"""Which calls are quick enough to make on an event loop rather than hand to a thread.

Handing a call to a thread and back costs 75-95 µs of CPU on these machines (futex wake-ups and GIL
hand-offs), as much as a small model's whole predict(). A call that averages under `INLINE_MAX_S` is
cheaper on the loop; a slower one would hold the loop (and, on Ray, the health checks it answers).
"""

from __future__ import annotations

__all__ = ["INLINE_MAX_S", "CallTimes"]

INLINE_MAX_S = 0.002


class CallTimes:
    """A moving average of how long calls take; `quick` once `warm_up` of them were measured."""

    __slots__ = ("average", "count", "warm_up")

    def __init__(self, warm_up: int) -> None:
        self.average = INLINE_MAX_S
        self.count = 0
        self.warm_up = warm_up

    def add(self, seconds: float) -> None:
        self.count += 1
        self.average += (seconds - self.average) / 8

    @property
    def quick(self) -> bool:
        return self.count >= self.warm_up and self.average < INLINE_MAX_S
