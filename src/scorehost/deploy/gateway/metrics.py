"""The gateway's Prometheus metrics, per endpoint and deployment: `GET /metrics` on the gateway's port.

As for `scorehost serve` (`scorehost.http.metrics`), gateway workers write to one private folder and a
scrape reads them all. Labels are endpoint and deployment names from the routing table, never from what a
caller sends: the gateway's own refusals (unknown path or endpoint, a missing key) count under empty names.
"""

from __future__ import annotations

import os
from typing import Any

from scorehost.telemetry.prometheus import LATENCY_BUCKETS, MULTIPROC_ENV, exposition

__all__ = ["GatewayMetrics"]


class GatewayMetrics:
    """What one gateway worker records, and the exposition of the whole gateway's."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self._registry = CollectorRegistry(auto_describe=True)
        self._multiprocess = bool(os.environ.get(MULTIPROC_ENV))
        registry = None if self._multiprocess else self._registry
        labels = ["endpoint", "deployment"]
        self.requests = Counter(
            "scorehost_gateway_requests",
            "Requests the gateway answered, by endpoint, deployment and status (empty names: its own refusals).",
            [*labels, "status"],
            registry=registry,
        )
        self.latency = Histogram(
            "scorehost_gateway_request_duration_seconds",
            "Time from a request's arrival at the gateway to its answer, by endpoint and deployment.",
            labels,
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.in_flight = Gauge(
            "scorehost_gateway_requests_in_flight",
            "Requests the gateway is answering now.",
            multiprocess_mode="livesum",
            registry=registry,
        )
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    def answered(self, endpoint: str, deployment: str, status: int, seconds: float) -> None:
        key = (endpoint, deployment, status)
        children = self._children.get(key)
        if children is None:
            children = self._children[key] = (
                self.requests.labels(endpoint, deployment, str(status)),
                self.latency.labels(endpoint, deployment),
            )
        children[0].inc()
        children[1].observe(seconds)

    def exposition(self) -> bytes:
        return exposition(self._registry, self._multiprocess)
