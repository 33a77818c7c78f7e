"""Serve's autoscaler on a scorehost deployment, in the high-throughput (HAProxy) mode: a script answering in
microseconds goes from 1 to 2 replicas under bounded load and back to 1 after it, each within its delay plus
what the reports take (scorehost/ray/autoscaling.py, docs/ray.md "Autoscaling"); and what a replica reports."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from _ray_cluster import Cluster
from conftest import SCRIPTS

from scorehost.deploy.backends.ray_serve import RayBackend
from scorehost.deploy.spec import DeploymentSpec, RayOptions
from scorehost.ray.autoscaling import LOOK_BACK_PERIOD_S, METRICS_INTERVAL_S, RUNNING_REQUESTS, OngoingRequests

UP_S, DOWN_S = 2.0, 3.0
# A replica reports every METRICS_INTERVAL_S on the interval before; Serve averages the reports of LOOK_BACK_PERIOD_S.
LAG_S = LOOK_BACK_PERIOD_S + 2 * METRICS_INTERVAL_S
MARGIN_S = 10.0  # Serve's control loop, and a 2-core machine other tests share
HOLD_S = DOWN_S + 2 * METRICS_INTERVAL_S  # long enough for a wrong scale-down to show


@pytest.fixture
def backend(ray_cluster: Cluster, tmp_path: Path) -> Iterator[RayBackend]:
    made = RayBackend(ray_cluster.address, home=tmp_path / "home")
    yield made
    made.close()


class Load:
    """`clients` threads posting to `url` back to back until the block ends; `failures`: what was not a 200."""

    def __init__(self, url: str, clients: int) -> None:
        self.url, self.clients = url, clients
        self.stop = threading.Event()
        self.answered = 0
        self.failures: list[str] = []
        self.threads = [threading.Thread(target=self._client, daemon=True) for _ in range(clients)]

    def _client(self) -> None:
        with httpx.Client(timeout=30) as client:
            while not self.stop.is_set():
                try:
                    reply = client.post(self.url, json={"data": [1, 2]})
                except httpx.HTTPError as error:
                    self.failures.append(repr(error))
                    continue
                self.answered += 1
                if reply.status_code != 200:
                    self.failures.append(f"{reply.status_code} {reply.text[:200]}")

    def __enter__(self) -> Load:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(40)


def _replicas(app: str) -> dict[str, int]:
    from ray import serve

    return dict(serve.status().applications[app].deployments["ScoreHost"].replica_states)


def _wanted(app: str) -> int:
    """Replicas Serve keeps or is starting (not those stopping)."""
    return sum(count for state, count in _replicas(app).items() if state != "STOPPING")


def _within(seconds: float, done: Callable[[], bool], what: str, app: str) -> float:
    began = time.monotonic()
    while not done():
        assert time.monotonic() - began < seconds, f"{what} not within {seconds:.0f} s: {_replicas(app)}"
        time.sleep(0.25)
    return time.monotonic() - began


def _throughout(seconds: float, holds: Callable[[], bool], what: str, app: str) -> None:
    ends = time.monotonic() + seconds
    while time.monotonic() < ends:
        assert holds(), f"{what}: {_replicas(app)}"
        time.sleep(0.25)


@pytest.mark.timeout(240)  # bounded inside; the session's cluster may start in it, on a busy machine
def test_a_quick_script_scales_up_under_load_and_down_after_it(backend: RayBackend, ray_cluster: Cluster) -> None:
    """echo.py answers on the replica's event loop, where Serve's own count of ongoing requests read 0 whatever the
    load (but for rare spikes when answers slowed down); 8 clients against a target of 0.5 per replica call for 2."""
    ray = RayOptions(
        ray_cluster.address,
        ingress=ray_cluster.ingress,
        min_replicas=1,
        max_replicas=2,
        target_ongoing=0.5,
        upscale_delay_s=UP_S,
        downscale_delay_s=DOWN_S,
        num_cpus=0.1,
        graceful_shutdown_s=1,
    )
    spec = DeploymentSpec("mnist", "scaling", SCRIPTS / "echo.py", SCRIPTS, backend="ray", ray=ray)
    handle = backend.start(spec, 1)
    try:
        backend.wait_ready(handle, 90)
        app = handle.app_name
        assert _wanted(app) == 1
        with Load(backend.targets(handle)[0] + "/score", clients=8) as load:
            up = _within(UP_S + LAG_S + MARGIN_S, lambda: _wanted(app) == 2, "1 -> 2 replicas under load", app)
            _within(90, lambda: _replicas(app).get("RUNNING") == 2, "the second replica running", app)
            # Serve's own count read 0 between rare spikes, so it also let a replica go while the load went on
            _throughout(HOLD_S, lambda: _replicas(app) == {"RUNNING": 2}, "2 replicas while the load lasts", app)
        assert load.answered > 0
        assert load.failures == []  # scaling up loses no request
        down = _within(DOWN_S + LAG_S + MARGIN_S, lambda: _wanted(app) == 1, "2 -> 1 replicas after the load", app)
        print(f"scaled up {up:.1f} s after the load began, down {down:.1f} s after it ended")
    finally:
        backend.stop(handle, drain_seconds=1)


def test_a_replica_reports_its_requests_in_progress_as_a_mean_over_time() -> None:
    """Two requests held for the whole of an interval and one for half of it: a mean of 2.5, whatever instant Serve
    asks at. Requests that never yield count too: each yields once, so those that arrive together overlap."""
    release = asyncio.Event()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["hold"] == "until released":
            await release.wait()
        elif scope["hold"] == "0.1 s":
            await asyncio.sleep(0.1)  # else answered at once, as a quick run() on the loop

    async def scenario() -> tuple[float, int, float, int]:
        ongoing = OngoingRequests(app)
        assert ongoing.stats() == {RUNNING_REQUESTS: 0.0}  # Serve asks: it counts, and yields, from now on
        held = [asyncio.create_task(ongoing({"type": "http", "hold": "until released"}, None, None)) for _ in "ab"]
        await asyncio.sleep(0.1)
        await ongoing({"type": "http", "hold": "0.1 s"}, None, None)
        busy, still = ongoing.stats()[RUNNING_REQUESTS], ongoing.ongoing
        release.set()
        await asyncio.gather(*held)
        await asyncio.sleep(0.05)
        after = ongoing.stats()[RUNNING_REQUESTS]
        quick = [asyncio.create_task(ongoing({"type": "http", "hold": "no"}, None, None)) for _ in "ab"]
        await asyncio.sleep(0)  # both have started, and neither has ended
        together = ongoing.ongoing
        await asyncio.gather(*quick)
        return busy, still, after, together

    busy, still, after, together = asyncio.run(scenario())
    assert 2.3 < busy < 2.7, busy
    assert still == 2
    assert after < 1.0  # the two left at once
    assert together == 2
