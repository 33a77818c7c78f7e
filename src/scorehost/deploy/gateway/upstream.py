"""HTTP/1.1 to the deployments: keep-alive connections per instance, responses parsed by httptools (llhttp).

Chosen by measurement (`bench/gateway.py --clients`, this 2-core machine, wrk + proxy + server sharing
it): a proxy forwarding with this pool kept 0.57-0.81x of the direct requests/s at 16 connections, one
using aiohttp's ClientSession 0.51-0.65x and one using httpx.AsyncClient 0.11-0.15x. It does what a
gateway needs and nothing more: buffered bodies, one request per connection at a time, a deadline.

The fast path, `send()` on an idle connection, arms no timer: the caller enforces the deadline (the
gateway's sweep calls `expire()`), because a timer armed and cancelled per request costs about 3 us of
CPU, more than the rest of the gateway's hardening together. `request()` keeps its own timer.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from typing import cast

import httptools

__all__ = ["Connection", "Done", "Response", "StaleConnection", "UpstreamError", "UpstreamPool", "UpstreamTimeout"]

# status, the header lines ("name: value\r\n" each, hop-by-hop ones and the length left out), body
Response = tuple[int, bytes, bytes]
_SKIP = frozenset({b"connection", b"keep-alive", b"transfer-encoding", b"content-length"})
# Called once per exchange, with the answer or the error: callbacks, not futures, on the request path (a
# future, a task and their coroutine frames cost more than the rest of the gateway's Python per request).
Done = Callable[[Response | None, Exception | None], None]


class UpstreamError(ConnectionError):
    """The instance could not be reached or broke the connection before answering."""


class StaleConnection(UpstreamError):
    """A connection broke before a single byte of the answer: the instance closed it while it was idle."""


class UpstreamTimeout(TimeoutError):
    """The instance did not answer within the deadline."""


class Connection(asyncio.Protocol):
    """One keep-alive connection; the parser calls back into it as answer bytes arrive."""

    __slots__ = ("body", "closed", "done", "headers", "parser", "pool", "received", "timer", "transport")

    def __init__(self, pool: UpstreamPool) -> None:
        self.pool = pool
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.done: Done | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.headers: list[bytes] = []
        self.body: list[bytes] = []
        self.closed = False
        self.received = False  # any byte of the current answer

    def start(self, data: bytes, done: Done) -> None:
        """Send one request (`data`: head and body); `done` gets its answer."""
        self.done, self.received = done, False
        assert self.transport is not None
        self.transport.write(data)

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports do not subclass asyncio's

    def data_received(self, data: bytes) -> None:
        self.received = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as error:
            self.fail(UpstreamError(f"the instance sent an invalid HTTP answer: {error}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.done is not None:
            if self.received:
                self.fail(UpstreamError("the instance closed the connection in the middle of its answer"))
            else:
                self.fail(StaleConnection("the instance closed the connection before answering"))

    # httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        if name.lower() not in _SKIP:  # formatted here, once: the gateway sends them on as they are
            self.headers.append(b"%s: %s\r\n" % (name, value))

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        done, self.done = self.done, None
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        answer = (self.parser.get_status_code(), b"".join(self.headers), b"".join(self.body))
        self.headers, self.body = [], []
        pool = self.pool
        if self.parser.should_keep_alive() and not self.closed and len(pool.idle) < pool.max_idle:
            pool.idle.append(self)
        else:
            self.close()
        if done is not None:
            done(answer, None)

    def expire(self) -> None:
        """The deadline passed: `done` gets UpstreamTimeout, and the connection is closed."""
        self.fail(UpstreamTimeout(f"{self.pool.where} did not answer in time"))

    def abandon(self) -> None:
        """The caller left: close, and call nobody back."""
        self.done = None
        self.fail(UpstreamError("abandoned"))

    def fail(self, error: Exception) -> None:
        done, self.done = self.done, None
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.close()  # its state is unknown: never reused
        if done is not None:
            done(None, error)

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()


class UpstreamPool:
    """Keep-alive connections to one instance, (host, port) or the Unix socket `path`, reused one request at a
    time."""

    def __init__(
        self, host: str, port: int, *, path: str | None = None, connect_timeout: float = 5.0, max_idle: int = 256
    ) -> None:
        self.host, self.port, self.path = host, port, path
        self.connect_timeout = connect_timeout
        self.max_idle = max_idle
        self.idle: list[Connection] = []
        # what the instance sees as Host; errors name the socket
        self.host_header = (f"[{host}]" if ":" in host else host) + ("" if path else f":{port}")
        self.host_bytes = self.host_header.encode()
        self.where = f"unix:{path}" if path else self.host_header

    def send(self, data: bytes, done: Done) -> Connection | None:
        """Send `data` (head and body) on an idle connection, `done` getting the answer; that connection, whose
        `expire()` the caller calls once its deadline passes (no timer is armed), or None when none is idle
        (then `request()` connects). `done` may get StaleConnection: send again with `request()`."""
        idle = self.idle
        while idle:
            conn = idle.pop()
            if not conn.closed:
                conn.start(data, done)
                return conn
        return None

    async def request(self, data: bytes, timeout: float) -> Response:
        """Send `data` (request line, headers, blank line, body) and wait for the whole answer.

        A connection taken from the pool may have been closed by the instance while idle: when it breaks
        before a single byte of the answer, the request is sent again on another connection."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            waiter: asyncio.Future[Response] = loop.create_future()
            sent = self.send(data, _resolve(waiter))
            if sent is None:
                break
            sent.timer = loop.call_at(deadline, sent.expire)
            try:
                return await waiter
            except StaleConnection:
                continue
        conn = await self._connect(loop, deadline)
        waiter = loop.create_future()
        conn.start(data, _resolve(waiter))
        conn.timer = loop.call_at(deadline, conn.expire)
        return await waiter

    async def _connect(self, loop: asyncio.AbstractEventLoop, deadline: float) -> Connection:
        limit = min(self.connect_timeout, max(0.0, deadline - loop.time()))
        try:
            async with asyncio.timeout(limit):
                if self.path is not None:
                    _, conn = await loop.create_unix_connection(lambda: Connection(self), sock=await self._unix(loop))
                else:
                    _, conn = await loop.create_connection(lambda: Connection(self), self.host, self.port)
        except TimeoutError:
            raise UpstreamTimeout(f"connecting to {self.where} took over {limit:.1f} s") from None
        except OSError as error:
            raise UpstreamError(f"cannot connect to {self.where}: {error.strerror or error}") from None
        return conn

    async def _unix(self, loop: asyncio.AbstractEventLoop) -> socket.socket:
        # Connected here: uvloop cannot connect to an abstract address (a leading NUL) by itself.
        assert self.path is not None
        address = "\0" + self.path[1:] if self.path.startswith("@") else self.path
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            await loop.sock_connect(sock, address)
        except BaseException:
            sock.close()
            raise
        return sock

    def close(self) -> None:
        """Close every idle connection."""
        for conn in self.idle:
            conn.close()
        self.idle.clear()


def _resolve(waiter: asyncio.Future[Response]) -> Done:
    def done(answer: Response | None, error: Exception | None) -> None:
        if waiter.done():  # the waiting request was cancelled
            return
        if error is not None:
            waiter.set_exception(error)
        else:
            waiter.set_result(cast(Response, answer))

    return done
