"""What both batchers share: the queue's entries, taking a batch from the queue, and running it as one call.

A batcher (`ThreadBatcher` on a worker's request threads, `LoopBatcher` on a Ray replica's event loop) decides
when a batch runs and where; `BatchCalls` decides what runs: the oldest queued inputs, up to
`max_batch_size`, skipping requests already answered and answering those whose deadline passed while queued
(they are never run). A batch of one is exactly the unbatched call; a larger one goes to `run_batch()`, and
when that raises or returns the wrong number of results, each of its requests is run again alone through
`run()`, so one bad input fails only its own request.
"""

from __future__ import annotations

import collections
import logging
import time
from collections.abc import Callable
from typing import Any

from scorehost.errors import QueueTimeout, RunFailed, ScorehostError, ScoringTimeout
from scorehost.host.batch import BatchSettings
from scorehost.http.gate import RunGate

__all__ = ["BatchCalls", "Outcome", "Pending", "ran_too_long", "waited_too_long"]

logger = logging.getLogger("scorehost.worker")

# One request's outcome: its result, or its error, and the milliseconds its call ran (0 with an error: it never ran).
Outcome = tuple[object, BaseException | None, float]


class Pending:
    """One queued request: its input, deadline and arrival (monotonic), id, and how its answer reaches it
    (`answer`: a future on a loop, or a function on a thread; `answered` once it has one)."""

    __slots__ = ("answer", "answered", "deadline", "request_id", "started", "value")

    def __init__(self, value: object, deadline: float, started: float, request_id: str, answer: Any) -> None:
        self.value = value
        self.deadline = deadline
        self.started = started
        self.request_id = request_id
        self.answer = answer
        self.answered = False


class BatchCalls:
    """Runs batches of `Pending` inputs through `gate`: `call_batch` for several, `call_one` for one alone."""

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
        self.on_batch = on_batch  # each call's number of requests (a metric)

    def take(self, queue: collections.deque[Pending]) -> tuple[list[Pending], list[Pending]]:
        """The next batch from the front of `queue`, and the requests whose deadline passed while queued."""
        now = time.monotonic()
        batch: list[Pending] = []
        expired: list[Pending] = []
        while queue and len(batch) < self.settings.max_batch_size:
            pending = queue.popleft()
            if pending.answered:  # its caller gave up (a disconnect), or its deadline was already answered
                continue
            (batch if pending.deadline > now else expired).append(pending)
        return batch, expired

    def call(self, batch: list[Pending]) -> list[Outcome]:
        """Run the batch (on the calling thread) through the gate: each request's outcome, in order."""
        if self.on_batch is not None:
            self.on_batch(len(batch))
        began = time.perf_counter()
        try:
            if len(batch) == 1:  # an idle worker: exactly the unbatched call
                results = [self._through_gate(lambda: self._call_one(batch[0].value), batch)]
            else:
                results = self._through_gate(lambda: self._call_batch([p.value for p in batch]), batch)
        except RunFailed as failed:
            if len(batch) == 1:  # it ran: its time counts, as a successful call's does
                return [(None, failed, (time.perf_counter() - began) * 1000)]
            logger.error("%s; retrying its %d requests one by one", failed.message, len(batch))
            return [self._alone(pending) for pending in batch]
        except ScoringTimeout as error:  # it ran past the deadline
            return [(None, error, (time.perf_counter() - began) * 1000)] * len(batch)
        except ScorehostError as error:  # it never ran: its turn never came, or the gate closed (a stuck run())
            return [(None, error, 0.0)] * len(batch)
        run_ms = (time.perf_counter() - began) * 1000
        return [(result, None, run_ms) for result in results]

    def _alone(self, pending: Pending) -> Outcome:
        began = time.perf_counter()
        try:
            result = self._through_gate(lambda: self._call_one(pending.value), [pending])
        except (RunFailed, ScoringTimeout) as failed:
            return None, failed, (time.perf_counter() - began) * 1000
        except ScorehostError as error:
            return None, error, 0.0
        return result, None, (time.perf_counter() - began) * 1000

    def _through_gate(self, call: Callable[[], Any], batch: list[Pending]) -> Any:
        """`call` under the latest deadline of the batch (each request also keeps its own)."""
        latest = max(pending.deadline for pending in batch)
        started = min(pending.started for pending in batch)
        return self.gate.run(call, deadline=latest, started=started, request_id=batch[0].request_id)


def waited_too_long(pending: Pending) -> QueueTimeout:
    return QueueTimeout(
        f"The request waited {(pending.deadline - pending.started) * 1000:.0f} ms for its batch and was not run "
        "(--timeout / SCORING_TIMEOUT_MS); retry later, or add workers."
    )


def ran_too_long(pending: Pending) -> ScoringTimeout:
    return ScoringTimeout(
        f"run_batch() did not finish within the {(pending.deadline - pending.started) * 1000:.0f} ms scoring timeout "
        "(--timeout / SCORING_TIMEOUT_MS)."
    )
