"""`--max-requests`: a worker counts the requests it takes and says once when it has taken its share.

The worker does not stop by itself: the supervisor stops it gracefully (SIGTERM) when no other worker is
being replaced, so that workers which reach their share together still go one at a time.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable
from typing import Any

from scorehost.http.granian_front import Answer, LaterResponder, Responder

__all__ = ["RequestBudget"]


class RequestBudget:
    """`limit` requests plus up to `jitter` more, drawn once per worker (as gunicorn's max_requests_jitter)."""

    def __init__(self, limit: int, jitter: int, spent: Callable[[int], None]) -> None:
        self.limit = limit + random.randint(0, jitter)
        self._spent = spent
        self._taken = itertools.count(1)  # next() is atomic under the GIL: no lock on the request path

    def take(self) -> None:
        """Count one request; the one that reaches the limit calls `spent(limit)`."""
        if next(self._taken) == self.limit:
            self._spent(self.limit)

    def counting(self, respond: Responder) -> Responder:
        """`respond`, counting each request."""

        def counted(environ: dict[str, Any]) -> Answer:
            self.take()
            return respond(environ)

        return counted

    def counting_later(self, respond: LaterResponder) -> LaterResponder:
        """`respond_later`, counting each request."""

        def counted(environ: dict[str, Any], send: Callable[[Answer], None]) -> None:
            self.take()
            respond(environ, send)

        return counted
