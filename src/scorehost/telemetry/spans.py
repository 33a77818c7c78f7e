"""OpenTelemetry spans, exported over OTLP/HTTP: an extra (`pip install 'scorehost[otel]'`), off unless
`--otlp-endpoint` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) names a collector. The scoring server and the
gateway both export through `SpanExporter`.

Each scoring request becomes a server span, `POST /score`, with three children: `queue` (arrival to the start
of run()), `run` (run() or run_batch()) and `serialize` (the result to JSON). Its ids are the ones the W3C
trace context already gave the request (`scorehost.telemetry.tracecontext`), so the `traceresponse` a caller gets and
the trace id in the logs name the exported span. The gateway's span of a request it forwards has the id it
sends on in `traceparent`, so the scoring server's span is its child. Spans go out in batches from a
background thread: recording one only appends it to a queue.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from scorehost.errors import ScorehostError
from scorehost.telemetry.tracecontext import TraceContext

__all__ = ["RequestTimes", "SpanExporter", "describe_export", "require_otel"]

# Where the OTLP exporter reads the headers it sends (credentials, often): named in the log, never shown.
_HEADER_VARIABLES = ("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "OTEL_EXPORTER_OTLP_HEADERS")


class RequestTimes:
    """When each part of one request happened: `time.perf_counter()` readings, and the wall clock at arrival."""

    __slots__ = ("arrived", "arrived_ns", "encoded", "ran", "run_began")

    def __init__(self) -> None:
        self.arrived_ns = time.time_ns()
        self.arrived = time.perf_counter()
        self.run_began = self.ran = self.encoded = 0.0


class SpanExporter:
    """Records the server spans of HTTP requests and sends them to `endpoint` (an OTLP/HTTP traces URL)."""

    def __init__(self, endpoint: str, service_name: str) -> None:
        require_otel()
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        self._ids = _GivenIds()
        ids: Any = self._ids  # duck-typed: the SDK only calls its two methods
        self._provider: Any = TracerProvider(resource=Resource.create({"service.name": service_name}), id_generator=ids)
        self._provider.add_span_processor(
            BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint), schedule_delay_millis=1000)
        )
        self._tracer = self._provider.get_tracer("scorehost")

    def record(self, trace: TraceContext, times: RequestTimes, status: int, request_id: str, method: str) -> None:
        """Export one scoring request's spans (after its answer is made, from the times it kept)."""

        def at(reading: float) -> int:
            return times.arrived_ns + int((reading - times.arrived) * 1e9)

        end = at(time.perf_counter())
        parts = [("queue", times.arrived, times.run_began), ("run", times.run_began, times.ran)]
        parts.append(("serialize", times.ran, times.encoded))
        self.server_span(
            trace,
            method,
            "/score",
            status,
            times.arrived_ns,
            end,
            {"scorehost.request_id": request_id},
            [(name, at(began), at(ended)) for name, began, ended in parts if began and ended],
        )

    def server_span(
        self,
        trace: TraceContext,
        method: str,
        route: str,
        status: int,
        start_ns: int,
        end_ns: int,
        attributes: Mapping[str, str | int],
        parts: Iterable[tuple[str, int, int]] = (),
    ) -> None:
        """Export one answered request as a SERVER span `<method> <route>` with the ids of `trace` (under the
        caller's span, if it sent one), `attributes` beside the HTTP ones, and `parts` (name, start and end in
        ns since the epoch) as its children. `route` is a template, never the raw path: span names must stay few.
        """
        from opentelemetry import trace as api
        from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, Status, StatusCode, TraceFlags

        parent_context = None
        if trace.parent:
            remote = SpanContext(
                int(trace.trace, 16),
                int(trace.parent, 16),
                is_remote=True,
                trace_flags=TraceFlags(int(trace.flags, 16)),
            )
            parent_context = api.set_span_in_context(NonRecordingSpan(remote))
        self._ids.given.trace, self._ids.given.span = int(trace.trace, 16), int(trace.span, 16)
        try:
            server = self._tracer.start_span(
                f"{method} {route}", context=parent_context, kind=SpanKind.SERVER, start_time=start_ns
            )
        finally:
            self._ids.given.trace = self._ids.given.span = 0
        server.set_attribute("http.request.method", method)
        server.set_attribute("http.route", route)
        server.set_attribute("http.response.status_code", status)
        for key, value in attributes.items():
            server.set_attribute(key, value)
        if status >= 500:  # OpenTelemetry's HTTP conventions: only 5xx is the server's failure, not 4xx
            server.set_status(Status(StatusCode.ERROR))
        inside = api.set_span_in_context(server)
        for name, began, ended in parts:
            self._tracer.start_span(name, context=inside, start_time=began).end(end_time=ended)
        server.end(end_time=end_ns)

    def close(self) -> None:
        """Send what is pending (a worker on its way out)."""
        self._provider.shutdown()


def describe_export(endpoint: str, environ: Mapping[str, str]) -> str:
    """Where spans go, for the start-up log: the endpoint without its user, password, query or fragment (where
    credentials hide), and the variable the exporter takes headers from, by name only."""
    parts = urlsplit(endpoint)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    try:
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        port = ""
    shown = urlunsplit((parts.scheme, host + port, parts.path, "", ""))
    if parts.query or parts.fragment:
        shown += " (its query not logged)"
    headers = next((name for name in _HEADER_VARIABLES if environ.get(name)), None)
    with_headers = f", with the headers of {headers} (not logged)" if headers else ""
    return f"{shown} over OTLP/HTTP{with_headers}"


def require_otel() -> None:
    """Raise the error naming the `otel` extra when OpenTelemetry is not installed: a check to make before
    forking workers, so that none of them fails on it."""
    try:
        import opentelemetry.exporter.otlp.proto.http.trace_exporter  # noqa: F401
        import opentelemetry.sdk.trace  # noqa: F401
    except ImportError:
        raise ScorehostError("--otlp-endpoint needs OpenTelemetry: pip install 'scorehost[otel]'") from None


class _GivenIds:
    """Ids for the next span from this thread when set (the request's own), random ones otherwise."""

    def __init__(self) -> None:
        from opentelemetry.sdk.trace.id_generator import RandomIdGenerator

        self._random = RandomIdGenerator()
        self.given = threading.local()
        self.given.trace = self.given.span = 0

    def is_trace_id_random(self) -> bool:
        return True  # ours are random too (scorehost.telemetry.tracecontext)

    def generate_trace_id(self) -> int:
        return getattr(self.given, "trace", 0) or self._random.generate_trace_id()

    def generate_span_id(self) -> int:
        span = getattr(self.given, "span", 0)
        if span:
            self.given.span = 0  # only the request's server span takes it; its children get their own
            return int(span)
        return self._random.generate_span_id()
