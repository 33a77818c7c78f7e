"""The collection one serving process writes to, and the request a script's `Collector` is called within.

A worker activates its `Collection` when it starts (after the fork: the writer is a thread); scripts reach it
through `active()` at `collect()` time, so a `Collector` made in a preloaded `init()`, before any worker
existed, still writes. Each scoring request gets one `RequestMark`: its id (the `x-request-id`, which joins
inputs, outputs and payloads of one request) and one random draw that every collection of the request is
sampled with, so a sampled request has all its rows and an unsampled one none.
"""

from __future__ import annotations

import logging
import random
import time
from contextvars import ContextVar
from typing import Any

from scorehost.collection.rows import EncodedRow, ObjectRow, PayloadRow, encode_row
from scorehost.collection.settings import CollectionSettings
from scorehost.collection.writer import CollectionWriter

__all__ = ["Collection", "RequestMark", "activate", "active", "current_request", "deactivate", "new_mark"]

logger = logging.getLogger("scorehost.collection")


class RequestMark:
    """One scoring request, as collection sees it."""

    __slots__ = ("context", "draw", "id")

    def __init__(self, request_id: str, draw: float) -> None:
        self.id = request_id
        self.draw = draw
        self.context: Any = None  # the script's correlation context, made at its first collect()


# Set on the request's own thread before run(); a run_batch() thread has none (its rows get ids of their own).
current_request: ContextVar[RequestMark | None] = ContextVar("scorehost_collection_request", default=None)


class Collection:
    """The settings and the writer of one process; `rate(name)` cached, since it is asked on every request."""

    def __init__(self, settings: CollectionSettings, writer: CollectionWriter) -> None:
        self.settings = settings
        self.writer = writer
        self._rates: dict[str, float] = {}
        self._warned: set[str] = set()

    def rate(self, name: str) -> float:
        rate = self._rates.get(name)
        if rate is None:
            rate = self._rates[name] = self.settings.rate(name)
        return rate

    def wants(self, name: str, draw: float) -> bool:
        """Whether a request (or a call outside one) with this draw is collected into `name`."""
        return draw < self.rate(name)

    def unused(self, name: str) -> bool:
        """True, and said once, when a script's collection is not turned on."""
        if self.rate(name) > 0:
            return False
        if name not in self._warned:
            self._warned.add(name)
            logger.warning(
                "the script collects %r, but that collection is not turned on: nothing of it is written. Turn it on "
                "with --collect %s (or data_collector.collections.%s.enabled: true in the deployment's YAML)",
                name,
                name,
                name,
            )
        return True

    def offer_object(self, name: str, correlation_id: str, value: object) -> bool:
        return self.offer(ObjectRow(name, time.time(), correlation_id, value))

    def offer(self, row: ObjectRow | PayloadRow) -> bool:
        """Queue the row as its line, encoded here: the writer thread then only writes, and never holds the GIL
        long enough to delay a request (measured: encoding on the writer's thread cost more, in GIL hand-offs,
        than encoding itself). The object is read now, so a script may change it once collect() returned."""
        try:
            line = encode_row(row, self.settings)
        except Exception:  # the writer encodes it again, and counts and logs why it cannot
            return self.writer.offer(row)
        return self.writer.offer(EncodedRow(row.collection, row.time, line))

    def close(self, timeout: float = 2.0) -> None:
        self.writer.close(timeout)


_active: Collection | None = None


def activate(collection: Collection) -> None:
    """Make `collection` the one scripts' collectors write to in this process."""
    global _active
    _active = collection


def deactivate() -> Collection | None:
    """Stop collecting in this process; returns the collection that was active (to close it)."""
    global _active
    collection, _active = _active, None
    return collection


def active() -> Collection | None:
    return _active


def new_mark(request_id: str) -> RequestMark:
    """The mark of a request about to run: set it as `current_request` on the thread that calls run()."""
    return RequestMark(request_id, random.random())
