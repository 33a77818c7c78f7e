"""A counting semaphore that serves waiters strictly in arrival order.

`threading.Semaphore` and `Lock` let a thread that just released a slot take it straight back: a
server thread that answers one request and picks up the next one barges ahead of requests already
waiting, which starve until their deadline. Here a released slot goes directly to the oldest waiter.
"""

from __future__ import annotations

import collections
import threading

__all__ = ["FifoSlots"]


class _Waiter:
    __slots__ = ("granted", "lock")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.lock.acquire()
        self.granted = False


class FifoSlots:
    """`slots` permits, granted first come, first served."""

    def __init__(self, slots: int) -> None:
        self._free = slots
        self._waiters: collections.deque[_Waiter] = collections.deque()
        self._mutex = threading.Lock()

    def acquire(self, timeout: float | None = None) -> bool:
        """Take a permit; False if `timeout` seconds passed first or `wake_all()` sent the waiters away."""
        with self._mutex:
            if self._free:  # free permits with waiters queued cannot happen: release() hands them over
                self._free -= 1
                return True
            if timeout is not None and timeout <= 0:
                return False
            waiter = _Waiter()
            self._waiters.append(waiter)
        if waiter.lock.acquire(timeout=-1 if timeout is None else timeout):
            return waiter.granted
        with self._mutex:
            try:
                self._waiters.remove(waiter)
            except ValueError:  # released between the timeout and here: the decision is already made
                pass
            else:
                return False
        return waiter.granted

    def release(self) -> None:
        """Give a permit back, to the oldest waiter if there is one."""
        with self._mutex:
            if self._waiters:
                waiter = self._waiters.popleft()
                waiter.granted = True
                waiter.lock.release()
            else:
                self._free += 1

    def wake_all(self) -> None:
        """Send every current waiter away empty-handed (their `acquire()` returns False)."""
        with self._mutex:
            while self._waiters:
                self._waiters.popleft().lock.release()
