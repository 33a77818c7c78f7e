"""W3C traceparent: continued when valid, started afresh when absent or malformed."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from scorehost.telemetry.tracecontext import TraceContext

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


def test_forked_workers_draw_ids_of_their_own() -> None:
    # In a process of its own: forking pytest's, threads and all, is what the test must not do.
    forks = (
        "import os; from scorehost.telemetry.tracecontext import TraceContext\n"
        "child = os.fork()\n"
        "os.write(1, (TraceContext.continued(None).header() + '\\n').encode())\n"  # one write: lines never interleave
        "os.waitpid(child, 0) if child else os._exit(0)\n"
    )
    printed = subprocess.run([sys.executable, "-c", forks], capture_output=True, text=True, check=True, timeout=30)
    first, second = printed.stdout.split()
    assert re.fullmatch(r"00-[0-9a-f]{32}-[0-9a-f]{16}-01", first)
    assert first.split("-")[1] != second.split("-")[1]  # trace ids
    assert first.split("-")[2] != second.split("-")[2]  # span ids
