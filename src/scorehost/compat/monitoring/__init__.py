"""`azureml.ai.monitoring`: Azure ML's data collector, writing to scorehost's own store.

Scripts that feed model monitoring run unchanged::

    from azureml.ai.monitoring import Collector
    inputs_collector = Collector(name="model_inputs")
    context = inputs_collector.collect(df)            # the request's correlation context
    outputs_collector.collect(predictions, context)

Rows go to the collection the serving process was started with (`scorehost serve --collect-dir`, or a
deployment's `data_collector`); see docs/data-collection.md. This module answers the name even where the real
`azureml-ai-monitoring` package is installed: that package sends to an Azure agent that does not exist here.

Where Azure differs: `collect()` never raises into `run()` and never blocks it. A row that cannot be kept (a
collection that is off, a full queue or disk) is dropped and counted (metrics and the log) and given to
`on_error` when the script passed one; Azure's default `on_error` raises, which would fail the request. Any
JSON-able value is collected, not only pandas DataFrames.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from typing import Any

from scorehost.collection.session import RequestMark, active, current_request
from scorehost.compat.monitoring.context import BasicCorrelationContext, CorrelationContext

__all__ = ["Collector"]

logger = logging.getLogger("scorehost.collection")
_told_off: set[str] = set()


class CollectionDropped(Exception):
    """What `on_error` receives when a row was not kept."""


def request_context() -> CorrelationContext:
    """The current request's context (one per request, made on first use), or a new one outside a request."""
    return _context_of(current_request.get())


def _context_of(mark: RequestMark | None) -> CorrelationContext:
    if mark is None:
        return BasicCorrelationContext()
    context: CorrelationContext | None = mark.context
    if context is None:
        context = mark.context = BasicCorrelationContext(id=mark.id)
    return context


class Collector:
    """Collects what a script passes into the collection `name` (`model_inputs`, `model_outputs`, ...)."""

    def __init__(self, *, name: str, on_error: Callable[[Exception], Any] | None = None) -> None:
        if not name:
            raise ValueError("Collector(name=...) needs the collection's name, e.g. Collector(name='model_inputs')")
        self.name = name
        self.on_error = on_error

    def collect(self, data: Any, correlation_context: CorrelationContext | None = None) -> CorrelationContext:
        """Queue `data` as one row of this collection; returns the context that joins it to the request's rows."""
        mark = current_request.get()
        context = correlation_context if correlation_context is not None else _context_of(mark)
        collection = active()
        if collection is None:
            if self.name not in _told_off:
                _told_off.add(self.name)
                logger.info(
                    "the script collects %r, but data collection is off: nothing is written. Turn it on with "
                    "`scorehost serve --collect-dir DIR`, or data_collector in the deployment's YAML",
                    self.name,
                )
            return context
        draw = mark.draw if mark is not None else random.random()
        if not collection.wants(self.name, draw):
            collection.unused(self.name)  # says once when the collection is not turned on at all
            return context
        try:
            kept = collection.offer_object(self.name, str(context.get_id()), data)
        except Exception as error:  # a context whose get_id() fails: the script's own object
            self._failed(error)
            return context
        if not kept:
            self._failed(CollectionDropped(f"collection {self.name!r}: the queue is full, the row was dropped"))
        return context

    def _failed(self, error: Exception) -> None:
        if self.on_error is not None:
            self.on_error(error)
