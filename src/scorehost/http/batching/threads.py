"""Adaptive batching on a worker's request threads: a lone request runs on its own thread, a backlog on one more.

On an idle worker (nothing queued or running, no backlog) a quick script's request (its calls average under
`INLINE_MAX_S`) is claimed alone (`claim_alone`) and takes the unbatched path on its own thread: no hand-off,
no wake-up, the same cost as without batching. Any other request's thread reads and parses its body, queues
its input with the function that answers it, and:

- when batches are running already, returns to the HTTP server at once, free to read the next request; the
  thread running batches answers this one too;
- when the request was already waiting when its thread came back for it (a backlog: `backlogged`, measured
  by the front), or the script is slow (its requests would otherwise wait unseen, without their deadline,
  behind it), hands the queue to the batch thread and goes back for the next request;
- otherwise runs the queue itself.

Requests that arrive while a batch runs are the next batch, so under load batches grow by themselves, with
one thread reading requests and one running them.

The thread running batches waits up to `max_wait_ms` for more only while other requests are being read.
Each request keeps its own deadline: the run gate's watchdog answers a queued request whose deadline passes
with a timeout (it is never run), and a request whose deadline passes while its batch runs with a timeout
at once; later answers to either are dropped.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator

from scorehost.http.batching.calls import BatchCalls, Outcome, Pending, ran_too_long, waited_too_long
from scorehost.http.batching.quick import CallTimes

__all__ = ["Deliver", "ThreadBatcher"]

logger = logging.getLogger("scorehost.worker")

# Answers one request: (its result, its error, the milliseconds its call ran). Called once, on some thread.
Deliver = Callable[[object, BaseException | None, float], None]


class ThreadBatcher:
    """Groups the inputs of requests that arrive on several threads into `calls`' batches."""

    def __init__(self, calls: BatchCalls) -> None:
        self.calls = calls
        self.settings = calls.settings
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        self._queue: collections.deque[Pending] = collections.deque()
        self._running: list[Pending] = []  # the batch being run, for the deadline check
        self._combining = False  # a thread is running batches
        self._waiting = False  # it waits for requests being read
        self._coming = 0  # requests being read or parsed: about to queue
        self._handed = threading.Condition(self._lock)  # the batch thread waits here for a queue to run
        self._batch_thread: threading.Thread | None = None
        self._handoff = False
        self._times = CallTimes(warm_up=8)
        calls.gate.watch_also(self._expire)

    @contextlib.contextmanager
    def coming(self) -> Iterator[None]:
        """Wrap the reading and parsing of a request before its `submit`, so a running batch may wait for it."""
        with self._lock:
            self._coming += 1
        try:
            yield
        finally:
            with self._lock:
                self._coming -= 1
                if self._waiting:
                    self._arrived.notify()  # queued now, or refused (a bad body): nothing more to wait for

    def submit(
        self,
        value: object,
        *,
        deadline: float,
        started: float,
        request_id: str,
        deliver: Deliver,
        backlogged: bool = False,
    ) -> None:
        """Queue `value`; `deliver` gets its outcome exactly once, from this thread or another. Returns at once
        when another thread runs batches or `backlogged` (other requests wait to be read), else after running
        the queue here (this request among it)."""
        pending = Pending(value, deadline, started, request_id, deliver)
        with self._lock:
            self._queue.append(pending)
            if self._waiting:
                self._arrived.notify()
            if self._combining:
                return
            self._combining = True
            if backlogged or not self._times.quick:
                self._hand_off()
                return
        self._combine()

    def claim_alone(self, backlogged: bool) -> bool:
        """Whether this request may run alone, outside the queue, as if unbatched: nothing queued or running,
        no backlog, a quick script. If so, call `release_alone` when it is done."""
        with self._lock:
            if self._combining or self._queue or backlogged or not self._times.quick:
                return False
            self._combining = True
        if self.calls.on_batch is not None:
            self.calls.on_batch(1)
        return True

    def release_alone(self, seconds: float) -> None:
        """The lone request took `seconds`; requests that queued meanwhile go to the batch thread."""
        self._times.add(seconds)
        with self._lock:
            if self._queue:
                self._hand_off()
            else:
                self._combining = False

    def _hand_off(self) -> None:
        """With the lock held: have the batch thread run the queue, while this thread goes on reading requests."""
        self._handoff = True
        if self._batch_thread is None:
            self._batch_thread = threading.Thread(target=self._run_handed, name="scorehost-batches", daemon=True)
            self._batch_thread.start()
        else:
            self._handed.notify()

    def _run_handed(self) -> None:
        while True:
            with self._lock:
                while not self._handoff:
                    self._handed.wait()
                self._handoff = False
            with contextlib.suppress(Exception):  # answered and logged by _combine: wait for the next queue
                self._combine()

    def _combine(self) -> None:
        batch: list[Pending] = []
        try:
            while True:
                with self._lock:
                    self._gather()
                    batch, expired = self.calls.take(self._queue)
                    if not batch and not expired:
                        self._combining = False
                        return
                    self._running = batch
                for pending in expired:
                    self._answer(pending, (None, waited_too_long(pending), 0.0))
                if batch:
                    began = time.perf_counter()
                    outcomes = self.calls.call(batch)
                    self._times.add(time.perf_counter() - began)
                    with self._lock:
                        self._running = []
                    for pending, outcome in zip(batch, outcomes, strict=True):
                        self._answer(pending, outcome)
        except BaseException as error:
            # A failure of our own (not of the script's, which comes back as an outcome): answer what this
            # thread held, and let the next request's thread run batches.
            logger.exception("batching failed")
            with self._lock:
                self._running = []
                self._combining = False
            for pending in batch:
                self._answer(pending, (None, error, 0.0))
            raise

    def _gather(self) -> None:
        """With the lock held: let requests being read join, up to max_wait_ms, while the batch is not full."""
        limit = time.monotonic() + self.settings.max_wait_ms / 1000
        while self._coming and len(self._queue) < self.settings.max_batch_size:
            remaining = limit - time.monotonic()
            if remaining <= 0:
                return
            self._waiting = True
            try:
                self._arrived.wait(remaining)
            finally:
                self._waiting = False

    def _answer(self, pending: Pending, outcome: Outcome) -> None:
        with self._lock:
            if pending.answered:
                return  # its deadline was answered already
            pending.answered = True
        try:
            pending.answer(*outcome)
        except Exception:  # one answer that cannot be sent must not keep the others from theirs
            logger.exception("could not answer request %s", pending.request_id)

    def _expire(self, now: float) -> float | None:
        """The watchdog's round: answer requests whose deadline passed; the earliest deadline still ahead."""
        waited: list[Pending] = []
        ran: list[Pending] = []
        with self._lock:
            if not self._queue and not self._running:
                return None
            for pending in self._queue:
                if not pending.answered and pending.deadline <= now:
                    waited.append(pending)
            for pending in self._running:
                if not pending.answered and pending.deadline <= now:
                    ran.append(pending)
            ahead = [p.deadline for p in (*self._queue, *self._running) if not p.answered and p.deadline > now]
        for pending in waited:
            self._answer(pending, (None, waited_too_long(pending), 0.0))
        for pending in ran:
            self._answer(pending, (None, ran_too_long(pending), 0.0))
        return min(ahead, default=None)
