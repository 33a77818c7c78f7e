"""`@rawhttp`: the decorator that asks for the request object itself, as the reference server defines it.

Dependency-free on purpose: the host imports this module to learn the mode, and must not pull in werkzeug.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["RAW_HTTP_ATTRIBUTE", "raw_http_requested", "rawhttp", "reset_raw_http_requested"]

F = TypeVar("F", bound=Callable[..., Any])

#: Set to True on every function decorated with `@rawhttp`.
RAW_HTTP_ATTRIBUTE = "__scorehost_rawhttp__"

# Process-wide, as on the reference: decorating *any* function switches run() to raw mode, so a script
# that decorates a helper (or a wrapper around run) still gets the request.
_requested = False


def rawhttp(func: F) -> F:
    """Ask for raw HTTP access: `run()` receives the request (an `AMLRequest`) instead of the body text.

    Returns `func` itself, marked; no wrapper, so signatures and other decorators are unaffected.
    """
    global _requested
    _requested = True
    # A builtin or a callable with __slots__ cannot be marked: the process-wide flag alone must do.
    with contextlib.suppress(AttributeError, TypeError):
        setattr(func, RAW_HTTP_ATTRIBUTE, True)
    return func


def raw_http_requested() -> bool:
    """Whether `@rawhttp` has been applied to any function in this process since the last reset."""
    return _requested


def reset_raw_http_requested() -> None:
    """Forget earlier `@rawhttp` uses, so that the next script loaded in this process starts clean."""
    global _requested
    _requested = False
