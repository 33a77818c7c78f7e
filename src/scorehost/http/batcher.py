"""Adaptive batching on one worker: concurrent requests' inputs go to the script's `run_batch()` together.

Requests are coroutines on the worker's event loop (granian's RSGI interface, or Serve's ASGI in a Ray
replica): each reads and parses its own body, queues its input and awaits its answer. One consumer takes
the queue's oldest inputs (up to `max_batch_size`), runs them through the gate as one call, and hands
each request its result. A batch is whatever arrived while the previous one ran, so under load batches
grow by themselves, and an idle worker runs a lone request at once, through `run()`, exactly as without
batching. The consumer waits up to `max_wait_ms` for more only while other requests are already being
read, never for requests that may not come.

While the script is quick (its calls average under `INLINE_MAX_S`), calls run on the loop itself: handing
each to a thread and back would cost more CPU than a small model's whole predict() (75-95 µs measured on
these machines), and requests that arrive meanwhile simply queue for the next batch. A slower script's
calls run on one worker thread, so the loop keeps reading requests and answering health checks.

Each request keeps its own answer and deadline: one whose deadline passes while queued is answered with a
timeout and never run; when `run_batch()` raises, or returns the wrong number of results, each of its
requests is run again alone through `run()`, so one bad input fails only its own request.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from scorehost.errors import RunFailed, ScorehostError, ScoringTimeout
from scorehost.host.batch import BatchSettings
from scorehost.http.gate import RunGate
from scorehost.http.quick import CallTimes

__all__ = ["Batcher"]

logger = logging.getLogger("scorehost.worker")


class _Pending:
    __slots__ = ("deadline", "future", "request_id", "started", "value")

    def __init__(self, value: object, deadline: float, started: float, request_id: str, future: Any) -> None:
        self.value, self.deadline, self.started, self.request_id, self.future = (
            value,
            deadline,
            started,
            request_id,
            future,
        )


class Batcher:
    """Groups the inputs of concurrent requests into `call_batch` calls; `call_one` runs a single one."""

    def __init__(
        self,
        gate: RunGate,
        settings: BatchSettings,
        call_batch: Callable[[list[Any]], list[object]],
        call_one: Callable[[Any], object],
        on_batch: Callable[[int], None] | None = None,
    ) -> None:
        self.gate = gate
        self.settings = settings
        self._call_batch = call_batch
        self._call_one = call_one
        self._on_batch = on_batch
        self._queue: collections.deque[_Pending] = collections.deque()
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

    async def submit(self, value: object, *, deadline: float, started: float, request_id: str) -> tuple[object, float]:
        """Run `value` (alone or in a batch) and return (its result, run milliseconds); raise its own error."""
        loop = asyncio.get_running_loop()
        pending = _Pending(value, deadline, started, request_id, loop.create_future())
        self._queue.append(pending)
        if self._arrived is not None:
            self._arrived.set()
        if not self._consuming:
            self._consuming = True
            loop.create_task(self._consume())
        try:
            return await asyncio.wait_for(asyncio.shield(pending.future), max(0.0, deadline - time.monotonic()))
        except TimeoutError:
            if pending in self._queue:
                self._queue.remove(pending)
                raise _waited_too_long(pending) from None
            raise _ran_too_long(pending) from None

    async def _consume(self) -> None:
        try:
            while self._queue:
                await self._gather()
                batch = self._take()
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

    def _take(self) -> list[_Pending]:
        now = time.monotonic()
        batch: list[_Pending] = []
        while self._queue and len(batch) < self.settings.max_batch_size:
            pending = self._queue.popleft()
            if pending.future.done():  # its caller gave up (a disconnect)
                continue
            if pending.deadline <= now:
                pending.future.set_exception(_waited_too_long(pending))  # never run
            else:
                batch.append(pending)
        return batch

    async def _run(self, batch: list[_Pending]) -> None:
        if self._on_batch is not None:
            self._on_batch(len(batch))
        if self._times.quick:
            outcomes = self._call(batch)
        else:
            outcomes = await asyncio.get_running_loop().run_in_executor(self._executor, self._call, batch)
        for pending, (result, error, run_ms) in zip(batch, outcomes, strict=True):
            if pending.future.done():
                continue
            if error is not None:
                pending.future.set_exception(error)
            else:
                pending.future.set_result((result, run_ms))

    def _call(self, batch: list[_Pending]) -> list[tuple[object, BaseException | None, float]]:
        """Run the batch through the gate (on the loop or the worker thread): each request's outcome."""
        began = time.perf_counter()
        try:
            if len(batch) == 1:  # an idle worker: exactly the unbatched call
                results = [self._through_gate(lambda: self._call_one(batch[0].value), batch)]
            else:
                results = self._through_gate(lambda: self._call_batch([p.value for p in batch]), batch)
        except RunFailed as failed:
            if len(batch) == 1:
                return [(None, failed, 0.0)]
            logger.error("%s; retrying its %d requests one by one", failed.message, len(batch))
            return [self._alone(pending) for pending in batch]
        except ScorehostError as error:  # the deadline passed, or the gate closed (a stuck run())
            return [(None, error, 0.0)] * len(batch)
        finally:
            self._times.add(time.perf_counter() - began)
        run_ms = (time.perf_counter() - began) * 1000
        return [(result, None, run_ms) for result in results]

    def _alone(self, pending: _Pending) -> tuple[object, BaseException | None, float]:
        began = time.perf_counter()
        try:
            result = self._through_gate(lambda: self._call_one(pending.value), [pending])
        except ScorehostError as error:
            return None, error, 0.0
        return result, None, (time.perf_counter() - began) * 1000

    def _through_gate(self, call: Callable[[], Any], batch: list[_Pending]) -> Any:
        """`call` under the latest deadline of the batch (each request also keeps its own)."""
        latest = max(pending.deadline for pending in batch)
        started = min(pending.started for pending in batch)
        return self.gate.run(call, deadline=latest, started=started, request_id=batch[0].request_id)


def _waited_too_long(pending: _Pending) -> ScoringTimeout:
    return ScoringTimeout(
        f"The request waited {(pending.deadline - pending.started) * 1000:.0f} ms for its batch and was not run "
        "(--timeout / SCORING_TIMEOUT_MS); retry later, or add workers."
    )


def _ran_too_long(pending: _Pending) -> ScoringTimeout:
    return ScoringTimeout(
        f"run_batch() did not finish within the {(pending.deadline - pending.started) * 1000:.0f} ms scoring timeout "
        "(--timeout / SCORING_TIMEOUT_MS)."
    )
