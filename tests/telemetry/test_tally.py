"""Tallies: what they write in bulk equals what prometheus-client writes one observation at a time."""

from __future__ import annotations

import os
import random
import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from scorehost.telemetry.prometheus import LATENCY_BUCKETS
from scorehost.telemetry.tally import FLUSH_S, Tally


def test_a_tallied_histogram_writes_what_observe_would() -> None:
    registry = CollectorRegistry()
    direct = Histogram("direct", "d", buckets=LATENCY_BUCKETS, registry=registry)
    tallied = Histogram("tallied", "t", buckets=LATENCY_BUCKETS, registry=registry)
    tally = Tally()
    part = tally.histogram(tallied)
    values = [random.Random(7).uniform(0, 2) ** 4 for _ in range(2000)] + list(LATENCY_BUCKETS) + [0.0, 1e9]
    for value in values:
        direct.observe(value)
        part.observe(value)
    tally.flush()
    text = generate_latest(registry).decode()
    ours = sorted(line.replace("tallied", "") for line in text.splitlines() if line.startswith("tallied_"))
    theirs = sorted(line.replace("direct", "") for line in text.splitlines() if line.startswith("direct_"))
    assert [line for line in ours if "_created" not in line and "_sum" not in line] == [
        line for line in theirs if "_created" not in line and "_sum" not in line
    ]
    assert abs(tallied._sum.get() - direct._sum.get()) < 1e-6  # type: ignore[attr-defined]


def test_counter_children_and_gauge() -> None:
    registry = CollectorRegistry()
    counter = Counter("answered", "a", ["route", "status"], registry=registry)
    gauge = Gauge("in_flight", "i", registry=registry)
    tally = Tally()
    counts = tally.counter(lambda key: counter.labels(key[0], str(key[1])))
    live = tally.gauge(gauge)
    for _ in range(5):
        counts.inc(("/score", 200))
    counts.inc(("/", 503))
    live.inc()
    live.inc()
    live.dec()
    assert registry.get_sample_value("answered_total", {"route": "/score", "status": "200"}) is None  # not yet
    tally.flush()
    assert registry.get_sample_value("answered_total", {"route": "/score", "status": "200"}) == 5
    assert registry.get_sample_value("answered_total", {"route": "/", "status": "503"}) == 1
    assert registry.get_sample_value("in_flight") == 1
    tally.flush()  # nothing new: nothing written twice
    assert registry.get_sample_value("answered_total", {"route": "/score", "status": "200"}) == 5


def test_the_flusher_writes_without_being_asked() -> None:
    registry = CollectorRegistry()
    counter = Counter("ticks", "t", ["kind"], registry=registry)
    tally = Tally()
    counts = tally.counter(lambda key: counter.labels(key))
    counts.inc("a")
    deadline = time.monotonic() + 20 * FLUSH_S
    while registry.get_sample_value("ticks_total", {"kind": "a"}) != 1:
        assert time.monotonic() < deadline, "the flusher never wrote"
        time.sleep(FLUSH_S / 5)


def test_a_forked_child_starts_its_own_flusher_and_not_the_parents_backlog() -> None:
    registry = CollectorRegistry()
    counter = Counter("forked", "f", ["who"], registry=registry)
    tally = Tally()
    counts = tally.counter(lambda key: counter.labels(key))
    counts.inc("parent")  # pending in the parent when it forks
    pid = os.fork()
    if pid == 0:  # the child: its own tallies only, written by a flusher of its own
        ok = False
        try:
            counts.inc("child")
            time.sleep(3 * FLUSH_S)
            ok = registry.get_sample_value("forked_total", {"who": "child"}) == 1
            ok = ok and registry.get_sample_value("forked_total", {"who": "parent"}) is None
        finally:
            os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    tally.flush()
    assert registry.get_sample_value("forked_total", {"who": "parent"}) == 1
