"""A real OTLP/HTTP traces receiver for tests: spans are decoded with OpenTelemetry's own protobuf classes."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

__all__ = ["Collector", "attributes_of", "collector"]


class Collector:
    """An OTLP/HTTP traces receiver on a free port: keeps every span it is sent, and the services that sent
    them (`by_service`: service.name → its spans)."""

    def __init__(self) -> None:
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

        self.spans: list[Any] = []
        self.services: set[str] = set()
        self.by_service: dict[str, list[Any]] = {}
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                request = ExportTraceServiceRequest()
                request.ParseFromString(self.rfile.read(int(self.headers["content-length"])))
                for resource in request.resource_spans:
                    service = next(
                        (a.value.string_value for a in resource.resource.attributes if a.key == "service.name"), ""
                    )
                    collector.services.add(service)
                    for scope in resource.scope_spans:
                        collector.by_service.setdefault(service, []).extend(scope.spans)
                        collector.spans.extend(scope.spans)
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()  # quick to stop
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1/traces"

    def wait_for(self, count: int, timeout: float = 20) -> list[Any]:
        """Wait until `count` spans have arrived; all of them."""
        deadline = time.monotonic() + timeout
        while len(self.spans) < count:
            assert time.monotonic() < deadline, f"{len(self.spans)} spans arrived, not {count}"
            time.sleep(0.1)
        return self.spans

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def attributes_of(span: Any) -> dict[str, Any]:
    """A span's attributes as Python values (strings, ints)."""
    return {a.key: getattr(a.value, a.value.WhichOneof("value")) for a in span.attributes}


@pytest.fixture
def collector() -> Iterator[Collector]:
    """A receiver for the test's spans (conftest.py makes it every test's to ask for)."""
    made = Collector()
    yield made
    made.close()
