"""What every fuzzed answer of a scoring server must be, and how to tell the server survived."""

from __future__ import annotations

import re

from conftest import Server

from fuzz._tally import Recorder
from fuzz._wire import Answer, Exchange

__all__ = ["REQUIRED_HEADERS", "assert_alive", "check_scoring_exchange", "missing_headers"]

# What the pipeline puts on every answer of the app (http/pipeline.py), whatever the route and status.
REQUIRED_HEADERS = ("x-ms-request-id", "x-request-id", "x-ms-server-version", "x-ms-run-function-failed")
# The supervisor's words for a worker that died and was replaced (http/supervisor.py).
_RESTARTED = re.compile(r"worker \d+ \(pid \d+.*(restarting it|starting its replacement)")


def missing_headers(answer: Answer) -> list[str]:
    return [name for name in REQUIRED_HEADERS if name not in answer.headers]


def _from_the_http_layer(answer: Answer) -> bool:
    """granian's own refusal of bytes that are not HTTP/1.1 (no app involved): a bare 400, nothing in it."""
    return answer.status == 400 and not answer.body and "x-ms-server-version" not in answer.headers


def check_scoring_exchange(exchange: Exchange, server: Server, recorder: Recorder) -> None:
    """Count the answers; none may be a 5xx, and the one to our request carries the headers every answer does."""
    if not exchange.answers:
        recorder.answer(None)
    for answer in exchange.answers:
        recorder.answer(answer.status)
    for answer in exchange.answers:
        assert answer.status < 500, f"server error:\n{exchange.describe()}\nserver log:\n" + "\n".join(
            server.lines[-30:]
        )
    first = exchange.first
    if first is not None and first.complete and not _from_the_http_layer(first):
        assert not missing_headers(first), f"headers {missing_headers(first)} missing:\n{exchange.describe()}"


def assert_alive(server: Server) -> None:
    """The server still runs, is ready, and replaced no worker while it was fuzzed."""
    assert server.process.poll() is None, f"the server exited:\n{server.log}"
    with server.client(timeout=30) as client:
        answer = client.get("/")
    assert answer.status_code == 200, answer.text
    restarts = [line for line in server.lines if _RESTARTED.search(line)]
    assert not restarts, "\n".join(restarts)
