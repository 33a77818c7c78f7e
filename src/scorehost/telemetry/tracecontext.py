"""W3C Trace Context: the `traceparent` header that ties one request's work together across processes.

`traceparent: 00-<trace id, 32 hex>-<parent span id, 16 hex>-<flags, 2 hex>`. A caller's trace id is kept,
or a new one made; each hop (the gateway, the scoring server) adds a span of its own and passes
`00-<trace>-<its span>-<flags>` on. The scoring server tags its log lines, and the script's prints, with the
trace id, and tells the caller its span in `traceresponse` (Trace Context Level 2).
"""

from __future__ import annotations

import os
import random
import re
from contextvars import ContextVar

__all__ = ["TraceContext", "trace_id_var"]

trace_id_var: ContextVar[str] = ContextVar("scorehost_trace_id", default="")

_HEADER = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")
_ZERO_TRACE, _ZERO_SPAN = "0" * 32, "0" * 16
_random = random.Random()  # ids must be unique, not secret: no system call per request
# Forked workers (the gateway's, a preloaded server's) would otherwise all draw the same ids in the same order.
os.register_at_fork(after_in_child=_random.seed)


class TraceContext:
    """One hop of a trace: the trace id, this hop's span id, and the caller's span (if any)."""

    __slots__ = ("flags", "parent", "span", "trace")

    def __init__(self, trace: str, span: str, parent: str = "", flags: str = "01") -> None:
        self.trace, self.span, self.parent, self.flags = trace, span, parent, flags

    @classmethod
    def continued(cls, header: str | None) -> TraceContext:
        """This hop's context: continuing a valid `traceparent`, or starting a new trace (sampled)."""
        if header:
            match = _HEADER.fullmatch(header.strip().lower())
            if match and match.group(1) != _ZERO_TRACE and match.group(2) != _ZERO_SPAN:
                return cls(match.group(1), _new_span(), match.group(2), match.group(3))
        return cls(f"{_random.getrandbits(128):032x}", _new_span())

    def header(self) -> str:
        """`traceparent` for the next hop (and `traceresponse` for the caller): this hop as the parent."""
        return f"00-{self.trace}-{self.span}-{self.flags}"


def _new_span() -> str:
    span = _random.getrandbits(64)
    return f"{span or 1:016x}"
