"""GET /metrics over real sockets, parsed with prometheus-client's own parser: counts exact across workers and
after a worker is replaced, histograms consistent, batch sizes, init() time, and --no-metrics."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import httpx
from conftest import Server
from prometheus_client.parser import text_string_to_metric_families

from scorehost.telemetry.tally import FLUSH_S

Serve = Callable[..., Server]
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(server: Server) -> Samples:
    reply = httpx.get(server.url + "/metrics", timeout=10)
    assert reply.status_code == 200
    assert reply.headers["content-type"].startswith("text/plain; version=0.0.4")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(reply.text)
        for sample in family.samples
    }


def scrape_when(server: Server, name: str, expected: float, **labels: str) -> Samples:
    """Scrape until `name` reaches `expected`: each worker writes what it counted a few times a second
    (telemetry/tally.py), so the one not answering the scrape may be up to FLUSH_S behind."""
    deadline = time.monotonic() + 10 * FLUSH_S
    while True:
        samples = scrape(server)
        if value(samples, name, **labels) == expected or time.monotonic() > deadline:
            return samples
        time.sleep(FLUSH_S / 5)


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def check_histogram(samples: Samples, name: str, count: float, **labels: str) -> None:
    """Buckets rise with `le`, +Inf holds every observation, and _count agrees."""
    buckets = sorted(
        (float(dict(key)["le"]), observed)
        for (sample, key), observed in samples.items()
        if sample == f"{name}_bucket" and all(dict(key).get(k) == v for k, v in labels.items())
    )
    assert buckets, f"no {name} buckets"
    assert [observed for _, observed in buckets] == sorted(observed for _, observed in buckets)
    assert buckets[-1] == (float("inf"), count)
    assert value(samples, f"{name}_count", **labels) == count
    assert value(samples, f"{name}_sum", **labels) >= 0


def test_counts_are_exact_across_workers_and_survive_a_replaced_worker(serve: Serve) -> None:
    server = serve("whoami/score.py", "--workers", "2")
    pids: set[int] = set()
    with ThreadPoolExecutor(4) as pool:  # new connections each time: both workers take some
        for reply in pool.map(lambda _: httpx.post(server.url + "/score", json={"data": 1}, timeout=30), range(60)):
            assert reply.status_code == 200
            pids.add(reply.json()["pid"])
    assert len(pids) == 2
    httpx.get(server.url + "/nowhere/../etc", timeout=10)  # any unknown path counts as one "other" route
    httpx.get(server.url + "/", timeout=10)

    samples = scrape_when(server, "scorehost_requests_total", 60, route="/score", status="200")
    samples = scrape_when(server, "scorehost_requests_total", 1, route="/", status="200")
    assert value(samples, "scorehost_requests_total", route="/score", status="200") == 60
    assert value(samples, "scorehost_requests_total", route="other", status="404") == 1
    assert value(samples, "scorehost_requests_total", route="/", status="200") == 1
    check_histogram(samples, "scorehost_request_duration_seconds", 60, route="/score")
    check_histogram(samples, "scorehost_queue_wait_seconds", 60)
    check_histogram(samples, "scorehost_run_duration_seconds", 60)
    assert value(samples, "scorehost_requests_in_flight") == 0
    assert value(samples, "scorehost_worker_restarts_total", cause="signal") == 0

    victim = min(pids)
    os.kill(victim, signal.SIGKILL)
    server.wait_for_log(rf"worker \d \(pid {victim}, up [\d.]+ s\) was killed by SIGKILL; restarting it")
    deadline = time.monotonic() + 30
    while httpx.get(server.url + "/ready", timeout=10).status_code != 200:  # the replacement is serving
        assert time.monotonic() < deadline
        time.sleep(0.05)
    for _ in range(10):
        assert httpx.post(server.url + "/score", json={"data": 1}, timeout=30).status_code == 200
    samples = scrape_when(server, "scorehost_requests_total", 70, route="/score", status="200")
    # The dead worker's 60-odd requests still count (written before it was killed); the new one's add to them.
    assert value(samples, "scorehost_requests_total", route="/score", status="200") == 70
    assert value(samples, "scorehost_worker_restarts_total", cause="signal") == 1
    check_histogram(samples, "scorehost_run_duration_seconds", 70)


def test_batch_sizes_are_counted(serve: Serve) -> None:
    server = serve("batch_echo.py")
    with server.client() as client, ThreadPoolExecutor(9) as pool:
        blocker = pool.submit(client.post, "/score", json={"data": {"sleep": 0.5}})
        time.sleep(0.25)
        replies = list(pool.map(lambda n: client.post("/score", json={"data": n}), range(8)))
        assert blocker.result().status_code == 200
    sizes = [reply.json()["batch"] for reply in replies]
    samples = scrape(server)
    calls = 1 + len([size for size in sizes if size == 1]) + len({size for size in sizes if size > 1})
    # Each batch of size n answered n requests: the histogram's sum is all 9 requests.
    assert value(samples, "scorehost_batch_size_sum") == 9
    assert value(samples, "scorehost_batch_size_count") <= calls
    check_histogram(samples, "scorehost_batch_size", value(samples, "scorehost_batch_size_count"))
    check_histogram(samples, "scorehost_run_duration_seconds", 9)


def test_init_duration_and_a_run_past_its_deadline_replaced(serve: Serve) -> None:
    server = serve("hangs.py", "--timeout", "1")
    samples = scrape(server)
    assert 0 < value(samples, "scorehost_init_duration_seconds") < 10
    with contextlib.suppress(httpx.RemoteProtocolError):  # blocked in C: its worker is replaced, connection and all
        httpx.post(server.url + "/score", json={"data": "hang"}, timeout=30)
    server.wait_for_log(r"was replaced: .*; restarting it")
    deadline = time.monotonic() + 30
    while value(scrape(server), "scorehost_worker_restarts_total", cause="deadline") != 1:
        assert time.monotonic() < deadline, server.log
        time.sleep(0.1)


def test_metrics_can_be_turned_off(serve: Serve) -> None:
    server = serve("echo.py", "--no-metrics")
    reply = httpx.get(server.url + "/metrics", timeout=10)
    assert reply.status_code == 404
    assert "--no-metrics" in reply.json()["message"]


def test_the_grafana_dashboard_names_only_metrics_the_server_exports(serve: Serve) -> None:
    import json
    import re
    from pathlib import Path

    dashboard = json.loads((Path(__file__).parents[2] / "docs" / "grafana" / "scorehost-dashboard.json").read_text())
    queried = {
        re.sub(r"_(bucket|sum|count|total)$", "", name)
        for panel in dashboard["panels"]
        for target in panel.get("targets", ())  # the collapsed GPU row: tests/telemetry/test_gpu_metrics.py
        for name in re.findall(r"scorehost_[a-z_]+", target["expr"])
    }
    server = serve("echo.py")
    httpx.post(server.url + "/score", json={"data": 1}, timeout=10)
    reply = httpx.get(server.url + "/metrics", timeout=10)
    exported = {family.name for family in text_string_to_metric_families(reply.text)}
    assert queried <= exported, queried - exported
    assert len(queried) == 8
