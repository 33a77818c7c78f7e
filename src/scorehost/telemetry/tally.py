"""Per-request metrics kept in the process and written to Prometheus' values in bulk, a few times a second.

In multiprocess mode every `inc()` or `observe()` of prometheus-client takes a lock and writes a memory-mapped
file; a histogram's `observe()` also walks its buckets in Python. Nine such calls per scoring request cost a
fast model about a tenth of its requests/s (measured with bench/run.py's model, 2 workers, 16 connections).
Here a request only appends under an uncontended lock; a flusher thread turns what piled up into one `inc()`
per counter child and one per histogram bucket every `FLUSH_S`, and on demand (a scrape, a worker's exit).
What a scrape sees is at most `FLUSH_S` old in the other workers.
"""

from __future__ import annotations

import bisect
import os
import threading
import time
from collections.abc import Callable, Hashable
from typing import Any

__all__ = ["FLUSH_S", "Tally", "TallyCounter", "TallyGauge", "TallyHistogram"]

FLUSH_S = 0.25


class TallyHistogram:
    """`observe(value)` for one Prometheus histogram (or histogram child)."""

    def __init__(self, histogram: Any, lock: threading.Lock, on_first: Callable[[], None]) -> None:
        self._target = histogram
        self._bounds: list[float] = list(histogram._upper_bounds)
        self._lock = lock
        self._on_first = on_first
        self._values: list[float] = []

    def forked(self, lock: threading.Lock) -> None:
        self._lock, self._values = lock, []

    def observe(self, value: float) -> None:
        with self._lock:
            self._values.append(value)
        self._on_first()

    def flush(self) -> None:
        with self._lock:
            values, self._values = self._values, []
        if not values:
            return
        counts = [0] * len(self._bounds)
        for value in values:
            counts[bisect.bisect_left(self._bounds, value)] += 1
        buckets = getattr(self._target, "_buckets", None)
        total = getattr(self._target, "_sum", None)
        if buckets is None or total is None or len(buckets) != len(counts):  # not the layout this was written for
            for value in values:
                self._target.observe(value)
            return
        for bucket, count in zip(buckets, counts, strict=True):
            if count:
                bucket.inc(count)
        total.inc(sum(values))


class TallyCounter:
    """`inc(key)` for a labelled Prometheus counter, `key` the labels' values; `child_of(key)` makes the child."""

    def __init__(self, child_of: Callable[[Any], Any], lock: threading.Lock, on_first: Callable[[], None]) -> None:
        self._child_of = child_of
        self._children: dict[Hashable, Any] = {}
        self._lock = lock
        self._on_first = on_first
        self._counts: dict[Hashable, int] = {}

    def forked(self, lock: threading.Lock) -> None:
        self._lock, self._counts = lock, {}

    def inc(self, key: Hashable) -> None:
        with self._lock:
            self._counts[key] = self._counts.get(key, 0) + 1
        self._on_first()

    def flush(self) -> None:
        with self._lock:
            counts, self._counts = self._counts, {}
        for key, count in counts.items():
            child = self._children.get(key)
            if child is None:
                child = self._children[key] = self._child_of(key)
            child.inc(count)


class TallyGauge:
    """`inc()` and `dec()` of a gauge of this process, written as a `set()` when flushed."""

    def __init__(self, gauge: Any, on_first: Callable[[], None]) -> None:
        self._gauge = gauge
        self._on_first = on_first
        self.value = 0
        self._written = 0

    def forked(self, lock: threading.Lock) -> None:
        self.value = self._written = 0

    def inc(self, amount: int = 1) -> None:
        self.value += amount  # one thread of the GIL at a time: the flusher reads a value that was true once
        self._on_first()

    def dec(self, amount: int = 1) -> None:
        self.value -= amount

    def flush(self) -> None:
        value = self.value
        if value != self._written:
            self._gauge.set(value)
            self._written = value


class Tally:
    """The tallies of one process and the thread that flushes them (started on first use, again after a fork)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self._parts: list[TallyHistogram | TallyCounter | TallyGauge] = []
        self._running = False
        self._flush_lock = threading.Lock()
        os.register_at_fork(after_in_child=self._forked)

    def histogram(self, histogram: Any) -> TallyHistogram:
        part = TallyHistogram(histogram, self.lock, self.start)
        self._parts.append(part)
        return part

    def counter(self, child_of: Callable[[Any], Any]) -> TallyCounter:
        part = TallyCounter(child_of, self.lock, self.start)
        self._parts.append(part)
        return part

    def gauge(self, gauge: Any) -> TallyGauge:
        part = TallyGauge(gauge, self.start)
        self._parts.append(part)
        return part

    def start(self) -> None:
        if self._running:  # the usual case: one attribute read
            return
        with self._flush_lock:
            if not self._running:
                self._running = True
                threading.Thread(target=self._flush_forever, name="scorehost-metrics", daemon=True).start()

    def _forked(self) -> None:
        # The flusher thread did not survive the fork; what the parent had piled up is the parent's to write.
        self._running = False
        self._flush_lock = threading.Lock()
        self.lock = threading.Lock()
        for part in self._parts:
            part.forked(self.lock)

    def flush(self) -> None:
        """Write what piled up now (a scrape of this process, a worker about to exit)."""
        with self._flush_lock:
            for part in self._parts:
                part.flush()

    def _flush_forever(self) -> None:
        while True:
            time.sleep(FLUSH_S)
            try:
                self.flush()
            except Exception:  # a metrics failure must not end the flushing for good
                import logging

                logging.getLogger("scorehost.metrics").exception("could not write metrics")
