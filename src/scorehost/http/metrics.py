"""Prometheus metrics of one server, summed over its worker processes: `GET /metrics`.

Workers and the supervisor write their values through Prometheus' multiprocess mode
(`scorehost.telemetry.prometheus`); without it (a Ray replica, tests), the metrics are this process's alone.

Names follow Prometheus' conventions: the `scorehost_` prefix, seconds, `_total` counters. Routes are a
fixed set of labels (unknown paths count as "other"), so no request can grow the number of series.
"""

from __future__ import annotations

import os

from scorehost.telemetry.gpu_metrics import exposition_with_gpus, record_worker_devices
from scorehost.telemetry.prometheus import LATENCY_BUCKETS, MULTIPROC_ENV
from scorehost.telemetry.tally import Tally, TallyHistogram

__all__ = ["ROUTES", "RESTART_CAUSES", "ServerMetrics"]

ROUTES = frozenset({"/score", "/", "/live", "/ready", "/swagger.json", "/docs", "/metrics"})
_BATCH = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096)
RESTART_CAUSES = ("exit", "signal", "oom", "deadline", "hung", "memory", "recycle")


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
        queue_wait = Histogram(
            "scorehost_queue_wait_seconds",
            "Time a scoring request waited for run() (behind others, or for its batch).",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        run_time = Histogram(
            "scorehost_run_duration_seconds",
            "Time in the script's run() or run_batch(), per request.",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        in_flight = Gauge(
            "scorehost_requests_in_flight",
            "Scoring requests being answered now.",
            multiprocess_mode="livesum",
            registry=registry,
        )
        batch_size = Histogram(
            "scorehost_batch_size", "Requests per run_batch() call.", buckets=_BATCH, registry=registry
        )
        # What every request records is tallied here and written in bulk (telemetry/tally.py).
        self.tally = Tally()
        self.queue_wait = self.tally.histogram(queue_wait)
        self.run_time = self.tally.histogram(run_time)
        self.batch_size = self.tally.histogram(batch_size)
        self.in_flight = self.tally.gauge(in_flight)
        self._answered = self.tally.counter(lambda key: self.requests.labels(key[0], str(key[1])))
        self.init_time = Gauge(
            "scorehost_init_duration_seconds",
            "Seconds the script's init() took, in the slowest worker.",
            multiprocess_mode="max",
            registry=registry,
        )
        self.restarts = Counter(
            "scorehost_worker_restarts",
            "Workers replaced, by cause: exit (an exit code), signal, oom (the kernel's out-of-memory killer), "
            "deadline (a run() that never returned), hung (no heartbeat: stopped, or C code holding the GIL), "
            "memory (past --max-memory-per-worker), recycle (--max-requests, planned).",
            ["cause"],
            registry=registry,
        )
        for cause in RESTART_CAUSES:  # at 0 from the start: a rate() needs the series before the first restart
            self.restarts.labels(cause)
        # Data collection (docs/data-collection.md): counted on the collection's writer thread, in bulk.
        self.collected = Counter(
            "scorehost_collected_rows",
            "Rows of collected data written, by collection (request, response, model_inputs, ...).",
            ["collection"],
            registry=registry,
        )
        self.collection_dropped = Counter(
            "scorehost_collection_dropped_rows",
            "Rows of collected data dropped, by collection and reason: queue_full (the writer fell behind), "
            "disk_full, write_error, unencodable (a value that cannot be written as JSON).",
            ["collection", "reason"],
            registry=registry,
        )
        self._latency: dict[str, TallyHistogram] = {}
        # A worker placed on GPUs records which (its environment says, set before it starts); a scrape names them.
        record_worker_devices(os.environ, registry)

    def request(self, path: str, status: int, seconds: float) -> None:
        """Count one answered request."""
        route = path if path in ROUTES else "other"
        self._answered.inc((route, status))
        latency = self._latency.get(route)
        if latency is None:
            latency = self._latency[route] = self.tally.histogram(self.latency.labels(route))
        latency.observe(seconds)

    def flush(self) -> None:
        """Write this process's tallies now (before a scrape, or before the process exits)."""
        self.tally.flush()

    def exposition(self) -> bytes:
        """The whole server's metrics in Prometheus' text format."""
        self.tally.flush()
        return exposition_with_gpus(self._registry, self._multiprocess)
