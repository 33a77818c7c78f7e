"""How many body bytes one gateway worker holds at once: a budget that large bodies wait for, in turn.

The gateway buffers each request body whole before it forwards it (one write per request to the instance,
and a request can be sent again when the instance had closed an idle connection), so what it holds must
be bounded. A body of known length reserves all of it before its first byte is read (and before a
100 Continue is sent); while the budget cannot cover it, its connection stops reading and waits, first
come, first served, and the kernel's flow control makes the client wait too. A reserved body always
completes, so the waiting cannot deadlock. Chunked bodies reserve as they grow. Small bodies are counted
but never wait: they would cost more in wake-ups than they hold.
"""

from __future__ import annotations

import collections
from typing import Protocol

__all__ = ["Budget", "Waiter"]


class Waiter(Protocol):
    def admitted(self, size: int) -> None:
        """`size` bytes were reserved for this waiter: it may read its body."""


class Budget:
    """The bytes of bodies a worker holds (`used`), at most `limit` but for small ones."""

    __slots__ = ("limit", "returned", "used", "waiting")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self.returned = 0  # bytes given back since the worker last handed free memory to the system
        self.waiting: collections.deque[tuple[int, Waiter]] = collections.deque()

    def take(self, size: int, waiter: Waiter) -> bool:
        """Reserve `size` bytes now (True), or queue `waiter` to be admitted when they are free (False)."""
        if not self.waiting and self.used + size <= self.limit:
            self.used += size
            return True
        self.waiting.append((size, waiter))
        return False

    def hold(self, size: int) -> None:
        """Count `size` bytes already read (a small body, or what came with the headers): they never wait."""
        self.used += size

    def give(self, size: int) -> None:
        """Return `size` reserved bytes, and admit the waiters that now fit, in turn."""
        self.used -= size
        self.returned += size
        waiting = self.waiting
        while waiting and self.used + waiting[0][0] <= self.limit:
            size, waiter = waiting.popleft()
            self.used += size
            waiter.admitted(size)

    def cancel(self, waiter: Waiter) -> None:
        """`waiter` no longer waits (its connection closed)."""
        for entry in self.waiting:
            if entry[1] is waiter:
                self.waiting.remove(entry)
                break
        if self.waiting:  # it may have been the head that blocked the others
            self.give(0)
