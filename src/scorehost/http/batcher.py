"""Adaptive batching on one worker: concurrent requests' inputs go to the script's `run_batch()` together.

Each request thread queues its input and waits. One of them leads: it takes the queue's oldest inputs (up to
`max_batch_size`), runs them through the gate as one call, hands each request its result, then passes the
lead to the oldest request still queued. A batch forms from whatever arrived while the previous one ran, so
under load batches grow by themselves, and an idle worker runs a lone request at once, through `run()`,
exactly as without batching. The leader waits up to `max_wait_ms` for more only while other requests are
already on their way in (read, not yet queued), never for requests that may not come.

Each request keeps its own answer and deadline: a request whose deadline passes while queued is answered
with a timeout and never run; when `run_batch()` raises, or returns the wrong number of results, each of
its requests is retried alone through `run()`, so one bad input fails only its own request.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from scorehost.errors import RunFailed, ScorehostError, ScoringTimeout
from scorehost.host.batch import BatchSettings
from scorehost.http.gate import RunGate

__all__ = ["Batcher"]

logger = logging.getLogger("scorehost.worker")

_RETRY = object()  # a request's outcome when its batch failed: run it alone


class _Request:
    __slots__ = ("deadline", "done", "error", "lead", "outcome", "request_id", "run_ms", "started", "value")

    def __init__(self, value: object, deadline: float, started: float, request_id: str) -> None:
        self.value = value
        self.deadline = deadline
        self.started = started
        self.request_id = request_id
        self.done = threading.Event()
        self.lead = False  # told to lead the next batch
        self.outcome: object = None
        self.error: BaseException | None = None
        self.run_ms = 0.0


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
        self._queue: collections.deque[_Request] = collections.deque()
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        self._leading = False
        self._coming = 0  # requests being read or parsed: about to queue

    @contextlib.contextmanager
    def coming(self) -> Iterator[None]:
        """Wrap the reading and parsing of a request before its `submit`, so a leader knows to wait for it."""
        with self._lock:
            self._coming += 1
        try:
            yield
        finally:
            with self._lock:
                self._coming -= 1
                self._arrived.notify()  # queued now, or refused (a bad body): either way, nothing more to wait for

    def submit(self, value: object, *, deadline: float, started: float, request_id: str) -> tuple[object, float]:
        """Run `value` (alone or in a batch) and return (its result, run milliseconds); raise its own error."""
        request = _Request(value, deadline, started, request_id)
        with self._lock:
            self._queue.append(request)
            lead = not self._leading
            self._leading = True
            self._arrived.notify()
        if lead:
            self._lead()
        while True:
            if request.lead:  # the previous leader passed the lead here (and set `done` to say so)
                request.lead = False
                request.done.clear()
                self._lead()
                continue
            if request.done.is_set():
                break
            if not request.done.wait(max(0.0, request.deadline - time.monotonic())):
                with self._lock:
                    if request.lead or request.done.is_set():
                        continue  # the lead, or the answer, came with the deadline
                    if request in self._queue:
                        self._queue.remove(request)
                        raise _waited_too_long(request)
                # Its batch runs: the answer is the timeout now, whatever the batch gives it later.
                raise _ran_too_long(request)
        if request.outcome is _RETRY:
            return self._run_alone(request)
        if request.error is not None:
            raise request.error
        return request.outcome, request.run_ms

    def _run_alone(self, request: _Request) -> tuple[object, float]:
        begun = time.perf_counter()
        result = self.gate.run(
            self._call_one,
            request.value,
            deadline=request.deadline,
            started=request.started,
            request_id=request.request_id,
        )
        return result, (time.perf_counter() - begun) * 1000

    def _lead(self) -> None:
        """Run one batch from the front of the queue, then pass the lead on (or give it up)."""
        try:
            self._gather()
            self._run_batch()
        finally:
            with self._lock:
                if self._queue:
                    successor = self._queue[0]
                    successor.lead = True
                    successor.done.set()
                else:
                    self._leading = False

    def _gather(self) -> None:
        """Wait up to max_wait_ms for requests already on their way in, while the batch is not full."""
        limit = time.monotonic() + self.settings.max_wait_ms / 1000
        with self._lock:
            while self._coming and len(self._queue) < self.settings.max_batch_size:
                remaining = limit - time.monotonic()
                if remaining <= 0:
                    break
                self._arrived.wait(remaining)

    def _run_batch(self) -> None:
        with self._lock:
            now = time.monotonic()
            batch: list[_Request] = []
            while self._queue and len(batch) < self.settings.max_batch_size:
                request = self._queue.popleft()
                if request.deadline <= now:
                    _finish(request, error=_waited_too_long(request))  # never run
                else:
                    batch.append(request)
        if not batch:
            return
        if self._on_batch is not None:
            self._on_batch(len(batch))
        first = batch[0]
        begun = time.perf_counter()
        try:
            if len(batch) == 1:  # an idle worker: exactly the unbatched call
                results: list[object] = [self._run(lambda: self._call_one(first.value), batch)]
            else:
                results = self._run(lambda: self._call_batch([request.value for request in batch]), batch)
        except ScoringTimeout as timeout:
            for request in batch:
                _finish(request, error=timeout)
            return
        except RunFailed as failed:
            if len(batch) == 1:
                _finish(first, error=failed)
                return
            logger.error("%s; retrying its %d requests one by one", failed.message, len(batch))
            for request in batch:
                _finish(request, outcome=_RETRY)
            return
        except ScorehostError as error:  # the gate closed (a stuck run()), say
            for request in batch:
                _finish(request, error=error)
            return
        run_ms = (time.perf_counter() - begun) * 1000
        for request, result in zip(batch, results, strict=True):
            _finish(request, outcome=result, run_ms=run_ms)

    def _run(self, call: Callable[[], Any], batch: list[_Request]) -> Any:
        """`call` through the gate, under the latest deadline of the batch (each request also keeps its own)."""
        latest = max(batch, key=lambda request: request.deadline)
        return self.gate.run(
            call, deadline=latest.deadline, started=min(r.started for r in batch), request_id=batch[0].request_id
        )


def _finish(
    request: _Request, *, outcome: object = None, error: BaseException | None = None, run_ms: float = 0.0
) -> None:
    request.outcome, request.error, request.run_ms = outcome, error, run_ms
    request.done.set()


def _waited_too_long(request: _Request) -> ScoringTimeout:
    return ScoringTimeout(
        f"The request waited {(request.deadline - request.started) * 1000:.0f} ms for its batch and was not run "
        "(--timeout / SCORING_TIMEOUT_MS); retry later, or add workers."
    )


def _ran_too_long(request: _Request) -> ScoringTimeout:
    return ScoringTimeout(
        f"run_batch() did not finish within the {(request.deadline - request.started) * 1000:.0f} ms scoring timeout "
        "(--timeout / SCORING_TIMEOUT_MS)."
    )
