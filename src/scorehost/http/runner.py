"""Run user code off the event loop, one call at a time per thread, under each request's deadline.

A deadline covers queueing and running. When it passes while a job waits, the job is answered and
never run. When it passes while `run()` runs, the caller is answered at once and a `TimeoutError`
is raised inside `run()` (as the reference's SIGALRM does); if `run()` still has not returned after
a grace period (it is stuck in C code, or swallowed the error), the executor reports itself stuck
so the worker can be replaced.
"""

from __future__ import annotations

import asyncio
import ctypes
import enum
import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from scorehost.errors import ScoringTimeout, ServiceUnavailable
from scorehost.logs import request_id_var

__all__ = ["DeadlineExceeded", "RunExecutor"]

T = TypeVar("T")
logger = logging.getLogger("scorehost.worker")


class DeadlineExceeded(TimeoutError):
    """Raised inside user code whose request ran out of time."""


class _State(enum.Enum):
    QUEUED = 1
    RUNNING = 2
    DONE = 3
    ABANDONED = 4


class _Job(Generic[T]):
    __slots__ = (
        "args",
        "created",
        "deadline",
        "function",
        "future",
        "lock",
        "loop",
        "request_id",
        "started",
        "state",
        "thread",
    )

    def __init__(
        self,
        function: Callable[..., T],
        args: tuple[Any, ...],
        future: asyncio.Future[T],
        loop: asyncio.AbstractEventLoop,
        deadline: float,
        request_id: str,
        created: float,
    ) -> None:
        self.function = function
        self.args = args
        self.future = future
        self.loop = loop
        self.deadline = deadline
        self.request_id = request_id
        self.created = created  # when the deadline's budget began, for the timeout messages
        self.lock = threading.Lock()
        self.state = _State.QUEUED
        self.thread = 0
        self.started = 0.0


_STOP = object()


class RunExecutor:
    """A fixed set of threads that run jobs in arrival order; `submit()` awaits one under its deadline."""

    def __init__(self, threads: int = 1, *, stuck_grace: float = 5.0, on_stuck: Callable[[str], None]) -> None:
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._stuck_grace = stuck_grace
        self._on_stuck = on_stuck
        self._closed: str | None = None
        self._pending: set[_Job[Any]] = set()
        self._threads = [
            threading.Thread(target=self._work, name=f"scorehost-run-{i}", daemon=True) for i in range(threads)
        ]
        for thread in self._threads:
            thread.start()

    async def submit(
        self,
        function: Callable[..., T],
        *args: Any,
        deadline: float,
        request_id: str = "",
        started: float | None = None,
    ) -> T:
        """Run `function(*args)` on a run thread; raise ScoringTimeout if `deadline` (monotonic) passes.

        `started` is when the request's clock began (default: now), so timeouts report the whole budget.
        """
        if self._closed is not None:
            raise ServiceUnavailable(self._closed)
        loop = asyncio.get_running_loop()
        created = time.monotonic() if started is None else started
        job: _Job[T] = _Job(function, args, loop.create_future(), loop, deadline, request_id, created)
        self._pending.add(job)
        self._queue.put(job)
        timer = loop.call_later(max(deadline - time.monotonic(), 0.0), self._expire, job)
        try:
            return await job.future
        finally:
            timer.cancel()
            self._pending.discard(job)

    def close(self, reason: str) -> None:
        """Refuse new jobs and answer every queued one with ServiceUnavailable(reason)."""
        self._closed = reason
        for job in list(self._pending):
            with job.lock:
                if job.state is _State.QUEUED:
                    job.state = _State.ABANDONED
                    if not job.future.done():
                        job.future.set_exception(ServiceUnavailable(reason))

    def stop(self) -> None:
        """Let the run threads exit once the queue is drained."""
        for _ in self._threads:
            self._queue.put(_STOP)

    @property
    def busy(self) -> bool:
        """Whether any job is queued or running."""
        return bool(self._pending)

    def _expire(self, job: _Job[Any]) -> None:
        with job.lock:
            if job.state is _State.QUEUED:
                job.state = _State.ABANDONED
                job.future.set_exception(
                    ScoringTimeout(
                        f"The request waited {self._budget(job)} behind other requests and was not run "
                        "(--timeout / SCORING_TIMEOUT_MS); retry later, or add workers."
                    )
                )
                return
            if job.state is not _State.RUNNING:
                return
            job.future.set_exception(
                ScoringTimeout(
                    f"run() did not finish within the {self._budget(job)} scoring timeout "
                    "(--timeout / SCORING_TIMEOUT_MS)."
                )
            )
            _raise_in_thread(job.thread, DeadlineExceeded)
        job.loop.call_later(self._stuck_grace, self._check_stuck, job)

    @staticmethod
    def _budget(job: _Job[Any]) -> str:
        return f"{(job.deadline - job.created) * 1000:.0f} ms"

    def _check_stuck(self, job: _Job[Any]) -> None:
        if job.state is _State.RUNNING:
            ran = time.monotonic() - job.started
            self._on_stuck(
                f"run() for request {job.request_id or '?'} is still running {ran:.1f} s after it started, "
                f"past its deadline and a {self._stuck_grace:.1f} s grace period"
            )

    def _work(self) -> None:
        while True:
            job: _Job[Any] | None = None
            try:
                job = self._queue.get()
                if job is _STOP:
                    return
                self._run(job)
            except DeadlineExceeded:
                # A timeout aimed at a job that had just finished; it must not leak into the next one.
                if job is not None:
                    job.state = _State.DONE

    def _run(self, job: _Job[Any]) -> None:
        with job.lock:
            if job.state is not _State.QUEUED:
                return
            job.state = _State.RUNNING
            job.thread = threading.get_ident()
            job.started = time.monotonic()
        request_id_var.set(job.request_id)
        try:
            outcome: tuple[bool, Any] = (True, job.function(*job.args))
        except BaseException as exc:
            outcome = (False, exc)
        with job.lock:
            job.state = _State.DONE
            _raise_in_thread(job.thread, None)  # drop a timeout that arrived too late to matter
        if not job.future.done():
            job.loop.call_soon_threadsafe(_settle, job.future, outcome)


def _settle(future: asyncio.Future[Any], outcome: tuple[bool, Any]) -> None:
    if future.done():
        return
    ok, value = outcome
    if ok:
        future.set_result(value)
    else:
        future.set_exception(value)


def _raise_in_thread(thread_id: int, exception: type[BaseException] | None) -> None:
    ctypes.pythonapi.PyThreadState_SetAsyncExc(
        ctypes.c_ulong(thread_id), ctypes.py_object(exception) if exception else ctypes.c_void_p(0)
    )
