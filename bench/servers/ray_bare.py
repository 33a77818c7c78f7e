"""A bare Ray Serve deployment doing the benchmark's model call (servers/common.py), in Serve's own request API:
what Serve itself costs per request, with no scorehost in the replica. Used by bench/on_ray.py."""

from __future__ import annotations

import sys
from typing import Any

from ray import serve
from starlette.requests import Request
from starlette.responses import Response


@serve.deployment
class Bare:
    def __init__(self, bench: str) -> None:
        sys.path.insert(0, bench)  # the replica's worker process does not start in bench/
        from servers.common import score

        self._score = score

    async def __call__(self, request: Request) -> Any:
        if request.method == "POST" and request.url.path.endswith("/score"):
            return Response(self._score(await request.body()), media_type="application/json")
        return Response(b"Healthy", media_type="text/plain; charset=utf-8")
