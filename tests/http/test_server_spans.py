"""Spans over OTLP/HTTP (scorehost[otel]): a real server sends them to a real HTTP receiver, decoded with
OpenTelemetry's own protobuf classes; the ids are the request's W3C trace context."""

from __future__ import annotations

from collections.abc import Callable

import httpx
from _otlp_receiver import Collector
from conftest import Server

Serve = Callable[..., Server]
TRACE, CALLER_SPAN = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"


def test_a_request_is_a_server_span_with_queue_run_and_serialize(serve: Serve, collector: Collector) -> None:
    server = serve("echo.py", "--otlp-endpoint", collector.url, env={"SERVICE_NAME": "mnist-scorer"})
    reply = httpx.post(
        server.url + "/score", json={"data": [1]}, headers={"traceparent": f"00-{TRACE}-{CALLER_SPAN}-01"}, timeout=30
    )
    assert reply.status_code == 200
    _, _, server_span, _ = reply.headers["traceresponse"].split("-")
    spans = {span.name: span for span in collector.wait_for(4)}
    assert set(spans) == {"POST /score", "queue", "run", "serialize"}
    root = spans["POST /score"]
    assert {span.trace_id.hex() for span in spans.values()} == {TRACE}  # the caller's trace, throughout
    assert root.span_id.hex() == server_span  # the span the caller was told of
    assert root.parent_span_id.hex() == CALLER_SPAN
    assert all(spans[name].parent_span_id == root.span_id for name in ("queue", "run", "serialize"))
    queue, run, serialize = spans["queue"], spans["run"], spans["serialize"]
    assert root.start_time_unix_nano <= queue.start_time_unix_nano <= queue.end_time_unix_nano
    assert queue.end_time_unix_nano <= run.start_time_unix_nano <= run.end_time_unix_nano
    assert run.end_time_unix_nano <= serialize.start_time_unix_nano <= serialize.end_time_unix_nano
    assert serialize.end_time_unix_nano <= root.end_time_unix_nano
    attributes = {attribute.key: attribute.value for attribute in root.attributes}
    assert attributes["http.response.status_code"].int_value == 200
    assert attributes["scorehost.request_id"].string_value == reply.headers["x-request-id"]
    assert attributes["http.route"].string_value == "/score"
    assert collector.services == {"mnist-scorer"}


def test_failures_and_batches_are_traced_too(serve: Serve, collector: Collector) -> None:
    server = serve("batch_echo.py", "--otlp-endpoint", collector.url)
    assert httpx.post(server.url + "/score", json={"data": "bad"}, timeout=30).status_code == 500
    assert httpx.post(server.url + "/score", json={"data": 1}, timeout=30).status_code == 200
    spans = collector.wait_for(5)  # the failure's server span alone (run_batch() gave no times), and 4
    roots = [span for span in spans if span.name == "POST /score"]
    statuses = sorted(
        next(a.value.int_value for a in span.attributes if a.key == "http.response.status_code") for span in roots
    )
    assert statuses == [200, 500]
    assert sorted(span.status.code for span in roots) == [0, 2]  # unset, and ERROR for the 500
