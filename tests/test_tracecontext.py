"""W3C traceparent: continued when valid, started afresh when absent or malformed."""

from __future__ import annotations

import re

import pytest

from scorehost.tracecontext import TraceContext

TRACE, SPAN = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"


def test_a_valid_header_is_continued_with_a_span_of_our_own() -> None:
    context = TraceContext.continued(f"00-{TRACE}-{SPAN}-00")
    assert (context.trace, context.parent, context.flags) == (TRACE, SPAN, "00")  # not sampled stays so
    assert context.span != SPAN
    assert context.header() == f"00-{TRACE}-{context.span}-00"


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        f"01-{TRACE}-{SPAN}-01",  # a version we do not know
        f"00-{'0' * 32}-{SPAN}-01",  # all-zero ids are invalid
        f"00-{TRACE}-{'0' * 16}-01",
        f"00-{TRACE[:-1]}-{SPAN}-01",
        f"00-{TRACE}-{SPAN}",
        "garbage",
    ],
)
def test_anything_else_starts_a_new_sampled_trace(header: str | None) -> None:
    context = TraceContext.continued(header)
    assert re.fullmatch(r"[0-9a-f]{32}", context.trace)
    assert context.trace != TRACE
    assert context.parent == ""
    assert re.fullmatch(r"00-[0-9a-f]{32}-[0-9a-f]{16}-01", context.header())


def test_ids_differ_between_requests() -> None:
    assert len({TraceContext.continued(None).trace for _ in range(1000)}) == 1000
