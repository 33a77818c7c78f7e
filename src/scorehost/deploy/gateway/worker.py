"""What one gateway worker allows its clients, and the state its connections share to enforce it.

Timeouts cost the request path no timer: each connection notes the phase it is in (and zeroes its deadline
when it moves on), and one sweep a second per worker arms the deadlines it finds at zero and acts on those
that passed. A deadline thus starts at the first sweep after the phase began: up to one sweep interval late,
never early. The same visit gives up on an instance past `--timeout` (504). The sweep also checks that the
worker's supervisor lives, and hands freed body memory back.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from scorehost.deploy.gateway.budget import Budget
from scorehost.system import release_free_memory

__all__ = ["Limits", "Worker"]

logger = logging.getLogger("scorehost.gateway")
MiB = 1024 * 1024
_SAY_EVERY_S = 10.0  # the connection cap's log line, at most this often
_TRIM_AFTER = 16 * MiB  # body bytes freed before the heap's free pages are handed back


@dataclass(frozen=True, slots=True)
class Limits:
    """The `scorehost gateway` flags that bound what a client may hold: time, connections, memory."""

    max_body_size: int = 100 * MiB
    header_timeout: float = 10.0  # from a request's first byte to its last header
    body_timeout: float = 30.0  # without a byte of the body; also the longest wait for the buffer budget
    idle_timeout: float = 75.0  # a keep-alive connection with no request (beyond what load balancers keep)
    max_connections: int = 10_000  # per worker
    max_buffered: int | None = None  # body bytes per worker; None: 256 MiB, or --max-body-size if larger

    def __post_init__(self) -> None:
        for flag, value in (
            ("--header-timeout", self.header_timeout),
            ("--body-timeout", self.body_timeout),
            ("--idle-timeout", self.idle_timeout),
        ):
            if not value > 0:
                raise ValueError(f"{flag} must be more than 0 seconds, not {value}")
        if self.max_connections < 1:
            raise ValueError(f"--max-connections must be at least 1, not {self.max_connections}")
        if self.max_buffered is not None and self.max_buffered < self.max_body_size:
            raise ValueError(
                f"--max-buffered ({self.max_buffered} bytes) must be at least --max-body-size "
                f"({self.max_body_size} bytes): a body that large could never be read"
            )

    @property
    def buffered(self) -> int:
        """The budget of body bytes per worker."""
        return self.max_buffered if self.max_buffered is not None else max(256 * MiB, self.max_body_size)


class Checked(Protocol):
    def check(self, now: float) -> None:
        """Act on the connection's deadline if it passed (`now`: time.monotonic())."""


class Worker:
    """One worker process's connections, body budget and sweep. `upstream_timeout`: the deadline of the
    instances' answers, which the sweep also enforces (`protocol.py`); `parent`: the supervisor's pid, when
    the worker was forked by one; `on_orphaned` is called once should it die."""

    def __init__(
        self,
        limits: Limits,
        *,
        upstream_timeout: float = 60.0,
        parent: int | None = None,
        on_orphaned: Callable[[], None] | None = None,
    ) -> None:
        self.limits = limits
        self.budget = Budget(limits.buffered)
        self.connections: set[Checked] = set()
        self.parent = parent
        self.on_orphaned = on_orphaned
        shortest = min(limits.header_timeout, limits.body_timeout, limits.idle_timeout, upstream_timeout)
        self.interval = min(1.0, max(0.05, shortest / 4))
        self._closed_at_cap = 0
        self._said_at = -_SAY_EVERY_S
        self._timer: asyncio.TimerHandle | None = None

    def admit(self, connection: Checked) -> bool:
        """Count a new connection in, or say no (it is then closed at once) when the worker has its most."""
        if len(self.connections) < self.limits.max_connections:
            self.connections.add(connection)
            return True
        self._closed_at_cap += 1
        now = time.monotonic()
        if now - self._said_at >= _SAY_EVERY_S:
            logger.warning(
                "gateway worker (pid %d) has %d connections open, its --max-connections: new ones are closed "
                "at once (%d since the last such line); raise --max-connections or add --workers",
                os.getpid(),
                len(self.connections),
                self._closed_at_cap,
            )
            self._said_at, self._closed_at_cap = now, 0
        return False

    def start(self) -> None:
        """Start the sweep (in the running loop)."""
        self._timer = asyncio.get_running_loop().call_later(self.interval, self._sweep)

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _sweep(self) -> None:
        now = time.monotonic()
        try:
            for connection in tuple(self.connections):  # a check may close it: connection_lost comes later
                connection.check(now)
            if self.parent is not None and os.getppid() != self.parent:
                logger.error("the gateway's supervisor (pid %d) is gone: worker %d stops", self.parent, os.getpid())
                self.parent = None
                if self.on_orphaned is not None:
                    self.on_orphaned()
            if self.budget.returned >= _TRIM_AFTER:
                self.budget.returned = 0
                release_free_memory()
        except Exception:  # the sweep must go on: without it no connection ever times out
            logger.exception("unexpected error in the gateway's connection sweep")
        self._timer = asyncio.get_running_loop().call_later(self.interval, self._sweep)
