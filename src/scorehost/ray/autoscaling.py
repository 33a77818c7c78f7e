"""What Serve's autoscaler counts for a scorehost replica: its requests in progress, averaged over time, and how
often it looks. Nothing here imports Ray.

Serve scales on ongoing requests per replica, which it learns from deployment handles (requests they queue and
send) and from each replica's own count. In the high-throughput mode docs/ray.md asks for, HAProxy sends requests
straight to the replicas, past every handle, so the replica's count is all Serve has; and that count is a sample,
taken every `min(look_back_period_s / 5, metrics_interval_s)` seconds (6 s by default), of the requests then
between Serve's start and end of a request (ray/serve/_private/replica.py, `_add_autoscaling_metrics_point_async`
and `_start_request`). A request that never yields to the event loop in between (a quick run() answered on the
loop by `scorehost.ray.asgi`; a bare Serve handler that calls its model) starts and ends between two samples, so
the sample reads 0 under any load: Serve never scaled up on a quick script. Requests waiting behind it wait
in the loop's queue or the socket, unseen.

`OngoingRequests` wraps the replica's ASGI app and keeps the exact time-weighted mean of its requests in
progress; the replica hands it to Serve as the autoscaling stat named as Serve's own sample, which it then
replaces (`metrics_dict.update(custom_metrics)` there), so Serve's default policy, its bounds and delays decide
on it. It counts from Serve's first question (Serve asks only with autoscaling on; without, it costs nothing), and
each request it counts first yields to the loop once: the requests that arrived together then count together while
they wait for run(), as requests waiting for a pool thread already do (about 10 us a request).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

__all__ = [
    "DOWNSCALE_DELAY_S",
    "LOOK_BACK_PERIOD_S",
    "METRICS_INTERVAL_S",
    "RUNNING_REQUESTS",
    "UPSCALE_DELAY_S",
    "OngoingRequests",
    "autoscaling_config",
]

# The metric Serve's default policy reads (ray.serve._private.common.RUNNING_REQUESTS_KEY).
RUNNING_REQUESTS = "running_requests"
# How often each replica reports (Serve's default: 10 s) and the window its reports are averaged over (30 s). Each
# report is a time-weighted mean, not a sample, so a short window loses nothing and follows the load within seconds.
METRICS_INTERVAL_S = 2.0
LOOK_BACK_PERIOD_S = 10.0
# How long the load must call for more (fewer) replicas before Serve adds (removes) them; Serve's defaults are 30 s
# and 600 s. Up soon, since a replica takes a while to start anyway; down after 5 minutes, as Kubernetes' HPA, since
# a replica stopped in a lull costs another model load when the load returns.
UPSCALE_DELAY_S = 10.0
DOWNSCALE_DELAY_S = 300.0

Message = dict[str, Any]
App = Callable[[Message, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]], Awaitable[None]]


def autoscaling_config(
    min_replicas: int,
    max_replicas: int,
    target_ongoing: float,
    upscale_delay_s: float = UPSCALE_DELAY_S,
    downscale_delay_s: float = DOWNSCALE_DELAY_S,
) -> dict[str, Any]:
    """Serve's `autoscaling_config` for a scorehost deployment."""
    return {
        "min_replicas": min_replicas,
        "max_replicas": max_replicas,
        "target_ongoing_requests": target_ongoing,
        "upscale_delay_s": upscale_delay_s,
        "downscale_delay_s": downscale_delay_s,
        "metrics_interval_s": METRICS_INTERVAL_S,
        "look_back_period_s": LOOK_BACK_PERIOD_S,
    }


class OngoingRequests:
    """ASGI middleware counting `app`'s HTTP requests in progress; `stats()` is their mean since the last call."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.ongoing = 0
        self.counting = False  # Serve asked, so autoscaling is on: count from the next request
        self._area = 0.0  # requests x seconds since the last stats()
        self._since = self._changed = time.monotonic()

    async def __call__(self, scope: Message, receive: Callable[[], Awaitable[Message]], send: Any) -> None:
        if not self.counting or scope["type"] != "http":  # no autoscaling: no cost; lifespan lasts as the replica
            await self.app(scope, receive, send)
            return
        self._change(1)
        try:
            await asyncio.sleep(0)  # let requests that arrived with this one in (and count) before it runs
            await self.app(scope, receive, send)
        finally:
            self._change(-1)

    def _change(self, delta: int) -> None:
        now = time.monotonic()
        self._area += self.ongoing * (now - self._changed)
        self._changed = now
        self.ongoing += delta

    def stats(self) -> dict[str, float]:
        """`{RUNNING_REQUESTS: the mean number of requests in progress since the last call}`."""
        self.counting = True
        self._change(0)
        elapsed = self._changed - self._since
        mean = self._area / elapsed if elapsed > 0 else float(self.ongoing)
        self._area, self._since = 0.0, self._changed
        return {RUNNING_REQUESTS: mean}
