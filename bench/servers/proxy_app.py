"""Minimal RSGI reverse proxies, one per upstream client, to choose the gateway's client by measurement.

``granian --interface rsgi --no-ws servers.proxy_app:app`` with ``PROXY_CLIENT`` = httpx | aiohttp | pool
(scorehost's httptools pool) and ``PROXY_UPSTREAM`` = http://HOST:PORT. Each forwards ``POST /score`` with
the body and content type and returns status, content type and body: the client is all that differs.
"""

from __future__ import annotations

import os
import re
from typing import Any
from urllib.parse import urlsplit

CLIENT = os.environ.get("PROXY_CLIENT", "pool")
UPSTREAM = os.environ.get("PROXY_UPSTREAM", "http://127.0.0.1:5001")


class App:
    def __init__(self) -> None:
        self.client: Any = None

    def __rsgi_init__(self, loop: Any) -> None:
        if CLIENT == "httpx":
            import httpx

            limits = httpx.Limits(max_connections=256, max_keepalive_connections=256)
            self.client = httpx.AsyncClient(base_url=UPSTREAM, limits=limits, timeout=60)
        elif CLIENT == "pool":
            from scorehost.deploy.gateway.upstream import UpstreamPool

            parts = urlsplit(UPSTREAM)
            self.client = UpstreamPool(parts.hostname or "127.0.0.1", parts.port or 80)

    async def __rsgi__(self, scope: Any, proto: Any) -> None:
        if scope.method != "POST":  # the readiness probe
            proto.response_bytes(200, [("content-type", "text/plain")], b"Healthy")
            return
        body = await proto()
        ctype = scope.headers.get("content-type", "application/json")
        if CLIENT == "httpx":
            r = await self.client.post("/score", content=body, headers={"content-type": ctype})
            status, out, answer = r.status_code, r.headers.get("content-type", ""), r.content
        elif CLIENT == "aiohttp":
            if self.client is None:  # aiohttp wants its session created inside the running loop
                import aiohttp

                connector = aiohttp.TCPConnector(limit=256)
                self.client = aiohttp.ClientSession(UPSTREAM, connector=connector, auto_decompress=False)
            async with self.client.post("/score", data=body, headers={"content-type": ctype}) as r:
                status, out, answer = r.status, r.headers.get("content-type", ""), await r.read()
        else:
            pool = self.client
            head = (
                f"POST /score HTTP/1.1\r\nhost: {pool.host_header}\r\ncontent-type: {ctype}\r\n"
                f"content-length: {len(body)}\r\n\r\n"
            ).encode()
            status, headers, answer = await pool.request(head + body, 60.0)
            found = re.search(rb"(?im)^content-type: *(.*?)\r$", headers)  # the pool gives header lines
            out = found[1].decode() if found else ""
        proto.response_bytes(status, [("content-type", out)], answer)


app = App()
