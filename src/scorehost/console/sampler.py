"""The console's charts: the control plane samples the metrics the gateway and the deployments already export.

Every `interval` seconds it reads the gateway's `/metrics` (requests by endpoint, deployment and status, and
their latency histogram) and each local deployment instance's (its in-flight gauge), and keeps, per endpoint
and per deployment, one point per sample for the last hour: requests per second by status class, latency
p50 and p99 over the interval, and requests in flight. No Prometheus server is needed; one is welcome to
scrape the same endpoints (docs/observability.md).
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

__all__ = ["MetricsSampler", "Point", "quantile", "targets_from_routes"]

logger = logging.getLogger("scorehost.console")

STATUS_CLASSES = ("2xx", "4xx", "5xx")
_REQUESTS = "scorehost_gateway_requests"
_LATENCY = "scorehost_gateway_request_duration_seconds"
_IN_FLIGHT = "scorehost_requests_in_flight"

Key = tuple[str, str]  # (endpoint, deployment); deployment "" for the endpoint as a whole
Targets = Mapping[Key, Iterable[str]]  # where each deployment's instances answer (the routing table's targets)


@dataclass(frozen=True, slots=True)
class Point:
    """One interval of one endpoint or deployment."""

    rates: Mapping[str, float]  # requests per second by status class
    p50: float | None  # seconds; None with no request in the interval
    p99: float | None
    in_flight: float | None  # None where no instance could be asked (a Ray deployment, say)


@dataclass
class _Raw:
    """Cumulative values read at one instant."""

    counts: dict[tuple[str, str, str], float] = field(default_factory=dict)  # (endpoint, deployment, class)
    buckets: dict[Key, dict[float, float]] = field(default_factory=dict)  # le -> cumulative count


def quantile(q: float, buckets: Mapping[float, float]) -> float | None:
    """The q-quantile of a histogram's cumulative bucket counts, interpolated within a bucket as Prometheus'
    `histogram_quantile` does; None for an empty histogram."""
    bounds = sorted(buckets)
    if not bounds or buckets[bounds[-1]] <= 0:
        return None
    rank = q * buckets[bounds[-1]]
    lower, below = 0.0, 0.0
    for bound in bounds:
        count = buckets[bound]
        if count >= rank:
            if math.isinf(bound):
                return lower  # past the largest finite bucket: its bound is all we know
            return lower + (bound - lower) * ((rank - below) / (count - below) if count > below else 1.0)
        lower, below = bound, count
    return lower


def _status_class(status: str) -> str | None:
    return f"{status[0]}xx" if len(status) == 3 and status[0] in "245" else None


def parse_gateway(text: str) -> _Raw:
    """Cumulative request counts and latency buckets by endpoint and deployment, from the gateway's exposition;
    the gateway's own refusals (empty names) are left out."""
    raw = _Raw()
    for family in text_string_to_metric_families(text):
        if family.name not in (_REQUESTS, _LATENCY):
            continue
        for sample in family.samples:
            endpoint, deployment = sample.labels.get("endpoint", ""), sample.labels.get("deployment", "")
            if not endpoint:
                continue
            if sample.name == f"{_REQUESTS}_total":
                status_class = _status_class(sample.labels.get("status", ""))
                if status_class is not None:
                    key = (endpoint, deployment, status_class)
                    raw.counts[key] = raw.counts.get(key, 0.0) + sample.value
            elif sample.name == f"{_LATENCY}_bucket":
                le = float(sample.labels["le"])
                buckets = raw.buckets.setdefault((endpoint, deployment), {})
                buckets[le] = buckets.get(le, 0.0) + sample.value
    return raw


def parse_in_flight(text: str) -> float:
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        if family.name == _IN_FLIGHT
        for sample in family.samples
    )


def _delta(current: float, previous: float | None) -> float:
    """A counter's growth; a counter that went down was reset (its process restarted) and counts from zero."""
    if previous is None:
        return 0.0
    return current - previous if current >= previous else current


class MetricsSampler:
    """Samples in a thread of its own; `series` answers the console's chart requests."""

    def __init__(
        self,
        gateway_url: str,
        targets: Callable[[], Targets],
        interval: float = 5.0,
        keep_seconds: float = 3600.0,
    ) -> None:
        self._gateway_url = gateway_url.rstrip("/")
        self._targets = targets
        self.interval = interval
        self._points: deque[tuple[float, dict[Key, Point]]] = deque(maxlen=max(2, int(keep_seconds / interval)))
        self._previous: tuple[float, _Raw] | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="console-sampler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval if self._previous is not None else 0.0):
            try:
                self.sample()
            except Exception:  # a sample lost is a gap in a chart; the control plane goes on
                logger.exception("sampling the metrics failed")

    def sample(self) -> None:
        """Read the metrics now and add a point per endpoint and deployment (the first read only sets a base)."""
        now = time.time()
        try:
            answer = httpx.get(f"{self._gateway_url}/metrics", timeout=2.0)
            raw = parse_gateway(answer.text) if answer.status_code == 200 else None
        except httpx.HTTPError:
            raw = None
        if raw is None:  # no gateway to ask: no point, and the next one counts from the next read
            self._previous = None
            return
        in_flight = self._in_flight(self._targets())
        previous = self._previous
        self._previous = (now, raw)
        if previous is None:
            return
        points = _points(raw, previous[1], max(now - previous[0], 1e-3), in_flight)
        with self._lock:
            self._points.append((now, points))

    def _in_flight(self, targets: Targets) -> dict[Key, float]:
        found: dict[Key, float] = {}
        for key, addresses in targets.items():
            for address in addresses:
                text = _scrape(address)
                if text is not None:
                    found[key] = found.get(key, 0.0) + parse_in_flight(text)
        return found

    def series(self, endpoint: str, deployment: str = "", since: float = 0.0) -> dict[str, Any]:
        """Columns for the charts: `t` (Unix seconds), requests/s by status class, p50/p99 in milliseconds,
        in flight; null where a point has no value."""
        key = (endpoint, deployment)
        with self._lock:
            points = [(t, p.get(key)) for t, p in self._points if t > since]
        columns: dict[str, list[Any]] = {"t": [round(t, 3) for t, _ in points]}
        for status_class in STATUS_CLASSES:
            columns[status_class] = [round(p.rates.get(status_class, 0.0), 3) if p else 0.0 for _, p in points]
        columns["p50_ms"] = [_ms(p.p50) if p else None for _, p in points]
        columns["p99_ms"] = [_ms(p.p99) if p else None for _, p in points]
        columns["in_flight"] = [p.in_flight if p else None for _, p in points]
        return {"interval": self.interval, **columns}


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 3)


def _points(raw: _Raw, before: _Raw, seconds: float, in_flight: Mapping[Key, float]) -> dict[Key, Point]:
    """Per deployment and per endpoint (deployment ""), the interval's rates and latency quantiles."""
    counts: dict[Key, dict[str, float]] = {}
    for (endpoint, deployment, status_class), value in raw.counts.items():
        grown = _delta(value, before.counts.get((endpoint, deployment, status_class), 0.0))
        for key in {(endpoint, deployment), (endpoint, "")}:
            per_class = counts.setdefault(key, {})
            per_class[status_class] = per_class.get(status_class, 0.0) + grown
    buckets: dict[Key, dict[float, float]] = {}
    for (endpoint, deployment), cumulative in raw.buckets.items():
        earlier = before.buckets.get((endpoint, deployment), {})
        for le, value in cumulative.items():
            grown = _delta(value, earlier.get(le, 0.0))
            for key in {(endpoint, deployment), (endpoint, "")}:
                merged = buckets.setdefault(key, {})
                merged[le] = merged.get(le, 0.0) + grown
    flying: dict[Key, float] = {}
    for (endpoint, deployment), value in in_flight.items():
        for key in {(endpoint, deployment), (endpoint, "")}:
            flying[key] = flying.get(key, 0.0) + value
    return {
        key: Point(
            rates={status_class: grown / seconds for status_class, grown in counts.get(key, {}).items()},
            p50=quantile(0.5, buckets.get(key, {})),
            p99=quantile(0.99, buckets.get(key, {})),
            in_flight=flying.get(key),
        )
        for key in counts.keys() | buckets.keys() | flying.keys()
    }


def _scrape(address: str) -> str | None:
    """A deployment instance's metrics text, or None (not answering, or not a server we can ask)."""
    try:
        if address.startswith("unix:"):
            path = address[len("unix:") :]
            transport = httpx.HTTPTransport(uds="\0" + path[1:] if path.startswith("@") else path)
            with httpx.Client(transport=transport, base_url="http://localhost", timeout=1.0) as client:
                answer = client.get("/metrics")
        else:
            answer = httpx.get(f"{address.rstrip('/')}/metrics", timeout=1.0)
    except httpx.HTTPError:
        return None
    return answer.text if answer.status_code == 200 else None


def targets_from_routes(routes: Path) -> dict[Key, list[str]]:
    """Every deployment's instances, from the gateway's routing table (deploy/gateway/routes.py)."""
    try:
        document = json.loads(routes.read_bytes())
        return {
            (endpoint, deployment): [str(target) for target in route.get("targets") or []]
            for endpoint, value in (document.get("endpoints") or {}).items()
            for deployment, route in (value.get("deployments") or {}).items()
        }
    except (OSError, ValueError, AttributeError):
        return {}
