"""Prometheus' multiprocess plumbing shared by the scoring server and the gateway.

Workers write their values to memory-mapped files in one private folder (prometheus-client's multiprocess
mode, `PROMETHEUS_MULTIPROC_DIR`), and whichever worker answers `/metrics` reads them all, so a scrape sees the
whole server whichever worker it reaches. The folder is made by `prepare_multiprocess()` before any worker
starts (prometheus-client picks its storage when first imported) and is new for every run, so one run's
counts never mix with another's.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = [
    "CONTENT_TYPE",
    "LATENCY_BUCKETS",
    "MULTIPROC_ENV",
    "exposition",
    "mark_worker_dead",
    "prepare_multiprocess",
    "remove_multiprocess",
]

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


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


def exposition(registry: Any, multiprocess_mode: bool, wrap: Callable[[Any], Any] | None = None) -> bytes:
    """`registry`'s metrics, or with `multiprocess_mode` those every process of the server wrote, as text;
    `wrap` turns that source into the collector exported (telemetry/gpu_metrics.py adds the GPU series so)."""
    from prometheus_client import CollectorRegistry, generate_latest

    source: Any = registry
    if multiprocess_mode:
        from prometheus_client import multiprocess

        source = multiprocess.MultiProcessCollector(None)  # type: ignore[no-untyped-call]
    elif wrap is None:
        return generate_latest(registry)
    merged = CollectorRegistry()
    merged.register(wrap(source) if wrap is not None else source)
    return generate_latest(merged)
