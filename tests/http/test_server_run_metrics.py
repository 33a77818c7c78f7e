"""GET /metrics counts every run() call in the run() duration histogram, a failed one too, as the queue histogram
does: both count the same calls, batched or not."""

from __future__ import annotations

from collections.abc import Callable

import httpx
from conftest import Server
from test_server_metrics import check_histogram, scrape_when, value

Serve = Callable[..., Server]


def test_a_failed_run_counts_in_the_run_histogram(serve: Serve) -> None:
    server = serve("run_raises.py")
    for _ in range(3):
        assert httpx.post(f"{server.url}/score", json={"data": 1}, timeout=30).status_code == 500
    samples = scrape_when(server, "scorehost_run_duration_seconds_count", 3)
    check_histogram(samples, "scorehost_run_duration_seconds", 3)
    check_histogram(samples, "scorehost_queue_wait_seconds", 3)
    assert value(samples, "scorehost_requests_total", route="/score", status="500") == 3


def test_a_failed_batched_call_counts_too(serve: Serve) -> None:
    server = serve("batch_echo.py")
    with server.client() as client:  # one at a time: each call is a batch of one, run() alone
        assert client.post("/score", json={"data": "bad"}).status_code == 500
        assert client.post("/score", json={"data": "ok"}).status_code == 200
        assert client.post("/score", json={"data": "bad"}).status_code == 500
    samples = scrape_when(server, "scorehost_run_duration_seconds_count", 3)
    check_histogram(samples, "scorehost_run_duration_seconds", 3)
    check_histogram(samples, "scorehost_queue_wait_seconds", 3)
