"""Prometheus metrics of one server, summed over its worker processes: `GET /metrics`.

Workers and the supervisor write their values to memory-mapped files in one private folder
(prometheus-client's multiprocess mode, `PROMETHEUS_MULTIPROC_DIR`), and whichever worker answers
`/metrics` reads them all, so a scrape sees the whole server whichever worker it reaches. The folder is made
by `prepare_multiprocess()` before any worker starts (prometheus-client picks its storage when first
imported) and emptied at start-up, so one run's counts never mix with another's. Without it (a Ray replica,
tests), the metrics are this process's alone.

Names follow Prometheus' conventions: the `scorehost_` prefix, seconds, `_total` counters. Routes are a
fixed set of labels (unknown paths count as "other"), so no request can grow the number of series.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

__all__ = [
    "CONTENT_TYPE",
    "LATENCY_BUCKETS",
    "MULTIPROC_ENV",
    "ServerMetrics",
    "exposition",
    "mark_worker_dead",
    "prepare_multiprocess",
    "remove_multiprocess",
]

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
ROUTES = frozenset({"/score", "/", "/ready", "/swagger.json", "/docs", "/metrics"})
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
_BATCH = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096)
RESTART_CAUSES = ("exit", "signal", "oom", "deadline")


def prepare_multiprocess() -> Path:
    """A fresh private folder for this server's metric files, named in the environment its workers inherit.
    Always a new one, even when the environment names one already: two servers sharing a folder would add
    up each other's counts."""
    folder = Path(tempfile.mkdtemp(prefix="scorehost-metrics-"))
    os.environ[MULTIPROC_ENV] = str(folder)
    return folder


def remove_multiprocess(folder: Path) -> None:
    """Remove the folder `prepare_multiprocess` made (one the operator named is left, emptied at next start)."""
    if folder.name.startswith("scorehost-metrics-"):
        shutil.rmtree(folder, ignore_errors=True)


def mark_worker_dead(pid: int) -> None:
    """Drop a dead worker's live gauges (its in-flight count); its counters keep counting in the sums."""
    if os.environ.get(MULTIPROC_ENV):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]


class ServerMetrics:
    """The metrics one process records, and the exposition of the whole server's."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self._registry = CollectorRegistry(auto_describe=True)
        self._multiprocess = bool(os.environ.get(MULTIPROC_ENV))
        registry = None if self._multiprocess else self._registry  # multiprocess values live in the files
        self.requests = Counter(
            "scorehost_requests", "HTTP requests answered, by route and status.", ["route", "status"], registry=registry
        )
        self.latency = Histogram(
            "scorehost_request_duration_seconds",
            "Time from a request's arrival to its answer, by route.",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.queue_wait = Histogram(
            "scorehost_queue_wait_seconds",
            "Time a scoring request waited for run() (behind others, or for its batch).",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.run_time = Histogram(
            "scorehost_run_duration_seconds",
            "Time in the script's run() or run_batch(), per request.",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.in_flight = Gauge(
            "scorehost_requests_in_flight",
            "Scoring requests being answered now.",
            multiprocess_mode="livesum",
            registry=registry,
        )
        self.batch_size = Histogram(
            "scorehost_batch_size", "Requests per run_batch() call.", buckets=_BATCH, registry=registry
        )
        self.init_time = Gauge(
            "scorehost_init_duration_seconds",
            "Seconds the script's init() took, in the slowest worker.",
            multiprocess_mode="max",
            registry=registry,
        )
        self.restarts = Counter(
            "scorehost_worker_restarts",
            "Workers replaced, by cause: exit (an exit code), signal, oom (the kernel's out-of-memory killer), "
            "deadline (a run() that never returned).",
            ["cause"],
            registry=registry,
        )
        for cause in RESTART_CAUSES:  # at 0 from the start: a rate() needs the series before the first restart
            self.restarts.labels(cause)
        self._children: dict[tuple[str, int], Any] = {}
        self._latency_children: dict[str, Any] = {}

    def request(self, path: str, status: int, seconds: float) -> None:
        """Count one answered request."""
        route = path if path in ROUTES else "other"
        child = self._children.get((route, status))
        if child is None:
            child = self._children[(route, status)] = self.requests.labels(route, str(status))
            self._latency_children[route] = self.latency.labels(route)
        child.inc()
        self._latency_children[route].observe(seconds)

    def exposition(self) -> bytes:
        """The whole server's metrics in Prometheus' text format."""
        return exposition(self._registry, self._multiprocess)


def exposition(registry: Any, multiprocess_mode: bool) -> bytes:
    """`registry`'s metrics, or with `multiprocess_mode` those every process of the server wrote, as text."""
    from prometheus_client import CollectorRegistry, generate_latest

    if not multiprocess_mode:
        return generate_latest(registry)
    from prometheus_client import multiprocess

    merged = CollectorRegistry()
    multiprocess.MultiProcessCollector(merged)  # type: ignore[no-untyped-call]
    return generate_latest(merged)
