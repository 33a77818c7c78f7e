"""`azureml.ai.monitoring.context`: the correlation contexts `Collector.collect()` takes and returns.

The same classes and methods as the `azureml-ai-monitoring` package, so scripts that build or read them keep
working. Under scorehost, a context made during a scoring request carries that request's `x-request-id`.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

__all__ = ["BasicCorrelationContext", "CorrelationContext", "WrapperContext", "get_context", "get_context_wrapper"]


class CorrelationContext:
    """What joins rows of one request: `get_id()` is written as each row's `correlationid`."""

    def get_id(self) -> str:
        return ""

    def __str__(self) -> str:
        return self.get_id()

    def __repr__(self) -> str:
        return self.__str__()


class BasicCorrelationContext(CorrelationContext):
    def __init__(self, id: str | None = None, timestamp: int | None = None, headers: dict[str, Any] | None = None):  # noqa: A002 -- Azure's name
        self.id = id or str(uuid.uuid4())
        self.timestamp = timestamp or int(time.time())
        self.headers = headers or {}

    def get_id(self) -> str:
        return self.id

    def get_timestamp(self) -> int:
        return self.timestamp

    def get_headers(self) -> dict[str, Any]:
        return self.headers


class WrapperContext(CorrelationContext):
    """A context with the outcome of the `collect()` that returned it (Azure returns these in debug mode)."""

    def __init__(self, correlation_context: CorrelationContext, success: bool, message: str) -> None:
        self._context = correlation_context
        self._success = success
        self._message = message

    def get_id(self) -> str:
        return self._context.get_id()

    def get_timestamp(self) -> int:
        return int(getattr(self._context, "get_timestamp", lambda: 0)())

    def get_headers(self) -> dict[str, Any]:
        return dict(getattr(self._context, "get_headers", dict)())

    def is_success(self) -> bool:
        return self._success

    def get_message(self) -> str:
        return self._message


def get_context() -> CorrelationContext:
    """A context for the current scoring request (its `x-request-id`), or a new one outside a request."""
    from scorehost.compat.monitoring import request_context

    return request_context()


def get_context_wrapper(context: CorrelationContext, success: bool, message: str) -> CorrelationContext:
    return WrapperContext(context, success, message)
