"""Adaptive batching on an event loop (a Ray replica, on Serve's loop): requests wait for their batch as coroutines.

Each request reads and parses its own body, queues its input and awaits its answer. One consumer task takes
the queue's oldest inputs (`BatchCalls.take`), runs them as one call, and hands each request its result. A
batch is whatever arrived while the previous one ran, so under load batches grow by themselves, and an idle
replica runs a lone request at once, through `run()`, exactly as without batching. The consumer waits up to
`max_wait_ms` for more only while other requests are already being read, never for requests that may not come.

While the script is quick (its calls average under `INLINE_MAX_S`), calls run on the loop itself: handing
each to a thread and back would cost more CPU than a small model's whole predict() (75-95 µs measured on
these machines), and requests that arrive meanwhile simply queue for the next batch. A slower script's
calls run on one worker thread, so the loop keeps reading requests and answering health checks.

Each request keeps its own deadline: one whose deadline passes while queued is answered with a timeout and
never run, and one whose deadline passes while its batch runs is answered with a timeout at once.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

from scorehost.http.batching.calls import BatchCalls, Outcome, Pending, ran_too_long, waited_too_long
from scorehost.http.batching.quick import CallTimes

__all__ = ["LoopBatcher"]


class LoopBatcher:
    """Groups the inputs of concurrent requests on one event loop into `calls`' batches."""

    def __init__(self, calls: BatchCalls) -> None:
        self.calls = calls
        self.settings = calls.settings
        self._queue: collections.deque[Pending] = collections.deque()
        self._consuming = False
        self._coming = 0  # requests being read or parsed: about to queue
        self._arrived: asyncio.Event | None = None
        self._times = CallTimes(warm_up=8)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="scorehost-run")

    @contextlib.contextmanager
    def coming(self) -> Iterator[None]:
        """Wrap the reading and parsing of a request before its `submit`, so the consumer knows to wait for it."""
        self._coming += 1
        try:
            yield
        finally:
            self._coming -= 1
            if self._arrived is not None:
                self._arrived.set()  # queued now, or refused (a bad body): either way, nothing more to wait for

    async def submit(self, value: object, *, deadline: float, started: float, request_id: str) -> Outcome:
        """Run `value` (alone or in a batch) and return its outcome: its result or the error of its call, and the
        milliseconds the call ran; raise the error of a request that was never run, or ran past its deadline."""
        loop = asyncio.get_running_loop()
        pending = Pending(value, deadline, started, request_id, loop.create_future())
        self._queue.append(pending)
        if self._arrived is not None:
            self._arrived.set()
        if not self._consuming:
            self._consuming = True
            loop.create_task(self._consume())
        try:
            return await asyncio.wait_for(asyncio.shield(pending.answer), max(0.0, deadline - time.monotonic()))
        except TimeoutError:
            if pending in self._queue:
                self._queue.remove(pending)
                raise waited_too_long(pending) from None
            raise ran_too_long(pending) from None
        finally:
            pending.answered = True  # answered, timed out or cancelled (a disconnect): never run it now

    async def _consume(self) -> None:
        try:
            while self._queue:
                await self._gather()
                batch, expired = self.calls.take(self._queue)
                for pending in expired:
                    pending.answer.set_exception(waited_too_long(pending))  # never run
                if batch:
                    await self._run(batch)
        finally:
            self._consuming = False

    async def _gather(self) -> None:
        """Let requests already being read join, waiting up to max_wait_ms while the batch is not full."""
        await asyncio.sleep(0)  # bodies that arrived while the last call ran get read and queued first
        limit = time.monotonic() + self.settings.max_wait_ms / 1000
        while self._coming and len(self._queue) < self.settings.max_batch_size:
            remaining = limit - time.monotonic()
            if remaining <= 0:
                return
            self._arrived = arrived = asyncio.Event()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(arrived.wait(), remaining)

    async def _run(self, batch: list[Pending]) -> None:
        if self._times.quick:
            outcomes = self._timed_call(batch)
        else:
            outcomes = await asyncio.get_running_loop().run_in_executor(self._executor, self._timed_call, batch)
        for pending, outcome in zip(batch, outcomes, strict=True):
            if not pending.answered and not pending.answer.done():
                pending.answer.set_result(outcome)

    def _timed_call(self, batch: list[Pending]) -> list[Outcome]:
        began = time.perf_counter()
        try:
            return self.calls.call(batch)
        finally:
            self._times.add(time.perf_counter() - began)
