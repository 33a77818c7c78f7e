"""Admit requests to user code one at a time (or N for thread-safe scripts), each under its deadline.

`run()` executes on the thread that serves the request: no hand-off to another thread, which on a
small model cost 15-20 % of throughput. The deadline covers waiting and running:

- a request that waits longer than its deadline for its turn is answered and never run;
- when the deadline passes while `run()` runs, a watchdog raises `TimeoutError` inside `run()`
  (as the reference server's SIGALRM does), and the request is answered with a timeout as soon as
  `run()` gives control back to Python;
- if `run()` still has not returned after a grace period (it is blocked in C code, or swallowed the
  error), the gate closes and reports itself stuck, so the worker can be replaced.
"""

from __future__ import annotations

import ctypes
import logging
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from scorehost.errors import QueueTimeout, ScoringTimeout, ServiceUnavailable, TooManyRequests
from scorehost.http.slots import FifoSlots
from scorehost.telemetry.logs import request_id_var

__all__ = ["DeadlineExceeded", "RunGate"]

T = TypeVar("T")
logger = logging.getLogger("scorehost.worker")
_TICK = 0.05  # the watchdog's longest sleep, unless the caller allows a longer one


class DeadlineExceeded(TimeoutError):
    """Raised inside user code whose request ran out of time."""


class _Running:
    __slots__ = ("deadline", "interrupted", "request_id", "started", "thread")

    def __init__(self, deadline: float, request_id: str, started: float) -> None:
        self.deadline = deadline
        self.request_id = request_id
        self.thread = threading.get_ident()
        self.started = started
        self.interrupted = 0.0  # when the watchdog raised the timeout inside run()


class RunGate:
    """`run(function, ...)` calls `function` on the current thread when a slot is free, within a deadline."""

    def __init__(
        self,
        slots: int = 1,
        *,
        stuck_grace: float = 5.0,
        on_stuck: Callable[[str], None],
        tick: float = _TICK,
        max_queue_wait: float | None = None,
    ) -> None:
        self._capacity = slots
        self._max_queue_wait = max_queue_wait
        self._slots = FifoSlots(slots)
        self._stuck_grace = stuck_grace
        # Every wake-up of the watchdog takes the GIL from the request thread; on a busy machine getting it back
        # can wait for a time slice, so it sleeps as long as it can: until the earliest deadline, at most `tick`.
        self._tick = tick
        self._on_stuck = on_stuck
        self._lock = threading.Lock()
        self._running: set[_Running] = set()
        self._closed: str | None = None
        self._also: list[Callable[[float], float | None]] = []
        self._watchdog = threading.Thread(target=self._watch, name="scorehost-watchdog", daemon=True)
        self._watchdog.start()

    def run(self, function: Callable[..., T], *args: Any, deadline: float, started: float, request_id: str = "") -> T:
        """Call `function(*args)` here; raise ScoringTimeout when `deadline` (monotonic) passes first."""
        self._enter(deadline, started)
        job = _Running(deadline, request_id, started)
        token = request_id_var.set(request_id)
        try:
            try:
                with self._lock:
                    self._running.add(job)
                result = function(*args)
            finally:
                # Until the job is off the watch list, the watchdog's timeout may land at any point, even
                # on the call into _leave() before its own `try`: retry, or the slot would leak.
                while True:
                    try:
                        self._leave(job)
                        break
                    except DeadlineExceeded:
                        continue
                request_id_var.reset(token)
                self._slots.release()
        except DeadlineExceeded:
            raise self._timeout(started, deadline) from None
        except BaseException as exc:
            if job.interrupted and isinstance(exc.__cause__, DeadlineExceeded):
                raise self._timeout(started, deadline) from None
            raise
        if job.interrupted:
            raise self._timeout(started, deadline)
        return result

    def watch_also(self, check: Callable[[float], float | None]) -> None:
        """Have the watchdog call `check(now)` on each of its rounds, from its own thread: deadlines of requests
        waiting elsewhere (a batch queue) are kept on the same clock. `check` answers what expired and returns
        the earliest deadline it still watches, or None."""
        self._also.append(check)

    def _leave(self, job: _Running) -> None:
        """Take the job off the watch list and cancel a timeout still pending in this thread."""
        with self._lock:
            self._running.discard(job)
            if job.interrupted:
                _raise_in_thread(job.thread, None)

    def acquire_all(self) -> None:
        """Take every slot (while the script loads), so that requests wait until `release_all()`."""
        for _ in range(self._capacity):
            self._slots.acquire()

    def release_all(self) -> None:
        for _ in range(self._capacity):
            self._slots.release()

    def close(self, reason: str) -> None:
        """Refuse new requests and answer waiting ones with ServiceUnavailable(reason)."""
        self._closed = reason
        self._slots.wake_all()

    @property
    def closed(self) -> bool:
        return self._closed is not None

    def _enter(self, deadline: float, started: float) -> None:
        wait = deadline - time.monotonic()
        capped = self._max_queue_wait is not None and self._max_queue_wait < wait
        if capped:
            assert self._max_queue_wait is not None
            wait = self._max_queue_wait
        if self._closed is None and self._slots.acquire(timeout=wait):
            if self._closed is None:
                return
            self._slots.release()
        if self._closed is not None:
            raise ServiceUnavailable(self._closed)
        if capped:
            raise TooManyRequests(
                f"The request waited {wait * 1000:.0f} ms for its turn and was not run (--max-queue-wait): "
                "the deployment is busy; retry later, or add instances."
            )
        raise QueueTimeout(
            f"The request waited {(deadline - started) * 1000:.0f} ms behind other requests and was not run "
            "(--timeout / SCORING_TIMEOUT_MS); retry later, or add workers."
        )

    @staticmethod
    def _timeout(started: float, deadline: float) -> ScoringTimeout:
        return ScoringTimeout(
            f"run() did not finish within the {(deadline - started) * 1000:.0f} ms scoring timeout "
            "(--timeout / SCORING_TIMEOUT_MS)."
        )

    def _watch(self) -> None:
        elsewhere: float | None = None  # the earliest deadline the `watch_also` checks still watch
        while True:
            with self._lock:
                deadlines = [job.deadline for job in self._running if not job.interrupted]
            if elsewhere is not None:
                deadlines.append(elsewhere)
            earliest = min(deadlines, default=None)
            delay = self._tick if earliest is None else min(self._tick, max(earliest - time.monotonic(), 0.0))
            time.sleep(delay + 0.001)
            now = time.monotonic()
            elsewhere = None
            for check in self._also:
                try:
                    watched = check(now)
                except Exception:  # the watchdog must outlive a failed check: it guards every run()
                    logger.exception("a deadline check failed")
                    continue
                if watched is not None:
                    elsewhere = watched if elsewhere is None else min(elsewhere, watched)
            with self._lock:
                for job in self._running:
                    if not job.interrupted and now >= job.deadline:
                        job.interrupted = now
                        _raise_in_thread(job.thread, DeadlineExceeded)
                    elif job.interrupted and now - job.interrupted >= self._stuck_grace and self._closed is None:
                        reason = (
                            f"run() for request {job.request_id or '?'} is still running {now - job.started:.1f} s "
                            f"after the request arrived, past its deadline and a {self._stuck_grace:.1f} s grace period"
                        )
                        self.close("The worker is being replaced after a run() that never returned; retry.")
                        threading.Thread(target=self._on_stuck, args=(reason,), daemon=True).start()


def _raise_in_thread(thread_id: int, exception: type[BaseException] | None) -> None:
    ctypes.pythonapi.PyThreadState_SetAsyncExc(
        ctypes.c_ulong(thread_id), ctypes.py_object(exception) if exception else ctypes.c_void_p(0)
    )
