"""HTTP/1.1 to the deployments: keep-alive connections per instance, responses parsed by httptools (llhttp).

Chosen by measurement (`bench/gateway.py --clients`, this 2-core machine, wrk + proxy + server sharing
it): a proxy forwarding with this pool kept 0.69-0.81x of the direct requests/s at 16 connections, one
using aiohttp's ClientSession 0.51-0.65x and one using httpx.AsyncClient 0.12-0.15x. It does what a
gateway needs and nothing more: buffered bodies, one request per connection at a time, a deadline.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import cast

import httptools

__all__ = ["Response", "UpstreamError", "UpstreamPool", "UpstreamTimeout"]

Response = tuple[int, list[tuple[bytes, bytes]], bytes]


class UpstreamError(ConnectionError):
    """The instance could not be reached or broke the connection before answering."""


class UpstreamTimeout(TimeoutError):
    """The instance did not answer within the deadline."""


class _Connection(asyncio.Protocol):
    """One keep-alive connection; the parser calls back into it as response bytes arrive."""

    __slots__ = ("body", "closed", "headers", "parser", "pool", "received", "reusable", "transport", "waiter")

    def __init__(self, pool: UpstreamPool) -> None:
        self.pool = pool
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.waiter: asyncio.Future[Response] | None = None
        self.headers: list[tuple[bytes, bytes]] = []
        self.body: list[bytes] = []
        self.closed = False
        self.received = False  # any byte of the current response
        self.reusable = False

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports do not subclass asyncio's

    def data_received(self, data: bytes) -> None:
        self.received = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as error:
            self.fail(UpstreamError(f"the instance sent an invalid HTTP response: {error}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(UpstreamError("the instance closed the connection before answering"))

    # httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        waiter, self.waiter = self.waiter, None
        self.reusable = self.parser.should_keep_alive()
        answer = (self.parser.get_status_code(), self.headers, b"".join(self.body))
        self.headers, self.body = [], []
        if waiter is not None and not waiter.done():
            waiter.set_result(answer)

    def fail(self, error: Exception) -> None:
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(error)
        self.close()

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()


class UpstreamPool:
    """Keep-alive connections to one instance (host, port), reused one request at a time."""

    def __init__(self, host: str, port: int, *, connect_timeout: float = 5.0, max_idle: int = 256) -> None:
        self.host, self.port = host, port
        self.connect_timeout = connect_timeout
        self.max_idle = max_idle
        self._idle: list[_Connection] = []
        self.host_header = (f"[{host}]" if ":" in host else host) + f":{port}"
        self.host_bytes = self.host_header.encode()

    async def request(self, head: bytes, body: bytes, timeout: float) -> Response:
        """Send `head` (request line and headers, ending in a blank line) and `body`; the whole response.

        A connection taken from the pool may have been closed by the instance while idle: when it breaks
        before a single byte of the answer, the request is sent once more on a fresh connection."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self._idle:
            conn = self._idle.pop()
            if conn.closed:
                continue
            try:
                return await self._exchange(loop, conn, head, body, deadline)
            except UpstreamError:
                if conn.received:
                    raise
                # a stale keep-alive connection: try a fresh one
        conn = await self._connect(loop, deadline)
        return await self._exchange(loop, conn, head, body, deadline)

    async def _connect(self, loop: asyncio.AbstractEventLoop, deadline: float) -> _Connection:
        limit = min(self.connect_timeout, max(0.0, deadline - loop.time()))
        try:
            async with asyncio.timeout(limit):
                _, conn = await loop.create_connection(lambda: _Connection(self), self.host, self.port)
        except TimeoutError:
            raise UpstreamTimeout(f"connecting to {self.host_header} took over {limit:.1f} s") from None
        except OSError as error:
            raise UpstreamError(f"cannot connect to {self.host_header}: {error.strerror or error}") from None
        return conn

    async def _exchange(
        self, loop: asyncio.AbstractEventLoop, conn: _Connection, head: bytes, body: bytes, deadline: float
    ) -> Response:
        waiter: asyncio.Future[Response] = loop.create_future()
        conn.waiter, conn.received, conn.reusable = waiter, False, False
        transport = conn.transport
        assert transport is not None
        transport.write(head + body if len(body) < 65536 else head)
        if len(body) >= 65536:
            transport.write(body)
        # call_at, not asyncio.timeout(): one timer handle, cheaper on every request
        timer = loop.call_at(deadline, _expire(conn, waiter, self.host_header))
        try:
            answer = await waiter
        except BaseException:
            conn.close()  # cancelled or failed mid-exchange: the connection's state is unknown
            raise
        finally:
            timer.cancel()
        if conn.reusable and not conn.closed and len(self._idle) < self.max_idle:
            self._idle.append(conn)
        else:
            conn.close()
        return answer

    def close(self) -> None:
        """Close every idle connection."""
        for conn in self._idle:
            conn.close()
        self._idle.clear()


def _expire(conn: _Connection, waiter: asyncio.Future[Response], where: str) -> Callable[[], None]:
    def expire() -> None:
        if not waiter.done():
            conn.waiter = None
            waiter.set_exception(UpstreamTimeout(f"{where} did not answer in time"))
            conn.close()

    return expire
