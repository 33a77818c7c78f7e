"""The gateway's HTTP/1.1 server side: an asyncio protocol per client connection, parsed by httptools.

Not granian, by measurement (bench/README.md): on this 2-core machine a granian RSGI "hello" costs about
75 us of CPU per request (the Rust runtime hands every request to the Python loop's thread and back),
an asyncio protocol on uvloop with httptools about 7 us. A gateway must fit in roughly 70 us per request
to keep 0.8x of a scoring server's requests/s, so the hand-off alone would spend it.

Requests on one connection are answered in order (pipelined ones wait their turn). A body past the limit is
answered 413 at once, with `connection: close`; the rest of it is then read and dropped as it arrives (never
kept), up to `_drain_bound` bytes and `_DRAIN_S` seconds, before the connection is closed. Clients that send the
whole body before reading (http.client, requests) thus read the 413: closed on unread bytes, the socket would
send them a reset instead. A body declared longer than that bound is refused and closed without waiting.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from http import HTTPStatus
from typing import cast

import httptools

from scorehost.deploy.gateway.app import Answer, Forward, GatewayApp, Request, error_answer
from scorehost.deploy.gateway.upstream import Response, StaleConnection, UpstreamError, UpstreamTimeout
from scorehost.telemetry.request_ids import new_request_id

__all__ = ["GatewayProtocol"]

logger = logging.getLogger("scorehost.gateway")

_REASONS = {status.value: status.phrase.encode() for status in HTTPStatus}
_DRAIN_S = 20.0  # at most this long reading and dropping a refused body, from the 413 on
_DRAIN_MIN, _DRAIN_MAX = 64 * 1024 * 1024, 1024 * 1024 * 1024


def _drain_bound(max_body_size: int) -> int:
    """The most bytes of a refused body read and dropped: 4 times the limit, within [64 MiB, 1 GiB]."""
    return min(max(4 * max_body_size, _DRAIN_MIN), _DRAIN_MAX)


class GatewayProtocol(asyncio.Protocol):
    """One client connection."""

    __slots__ = (
        "app",
        "body",
        "body_size",
        "client",
        "closing",
        "declared",
        "drain_left",
        "drain_timer",
        "forward",
        "headers",
        "max_body_size",
        "parser",
        "pending",
        "running",
        "transport",
        "url",
    )

    def __init__(self, app: GatewayApp, max_body_size: int) -> None:
        self.app = app
        self.max_body_size = max_body_size
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.client = b"unknown"
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.body: list[bytes] = []
        self.body_size = 0
        self.declared = -1  # a content-length past the limit: the request is refused once its headers are in
        self.drain_left = 0  # while a refused body is dropped: how many more bytes of it are read
        self.drain_timer: asyncio.TimerHandle | None = None  # set while a refused body is dropped
        self.pending: collections.deque[tuple[Request, bool, float]] = collections.deque()  # (..., arrived at)
        self.running = False
        self.closing = False
        self.forward: Forward | None = None

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports do not subclass asyncio's
        peer = transport.get_extra_info("peername")
        if peer:
            self.client = str(peer[0]).encode()

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._refuse(400, "upgrades are not supported")
        except httptools.HttpParserError:
            if self.drain_timer is not None:  # a refused body that is not valid HTTP/1.1 either
                self._drained()
            elif not self.closing:
                self._refuse(400, "the request is not valid HTTP/1.1")

    def connection_lost(self, exc: Exception | None) -> None:
        self.closing = True
        if self.drain_timer is not None:
            self.drain_timer.cancel()
            self.drain_timer = None
        if self.pending and self.app.metrics is not None:
            self.app.metrics.in_flight.dec(len(self.pending))  # the caller left: never answered
        self.pending.clear()

    # httptools callbacks
    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        name = name.lower()
        if name == b"content-length" and value.strip().isdigit() and int(value) > self.max_body_size:
            self.declared = int(value)  # refused in on_headers_complete: an expect header may follow
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        if self.closing:
            return
        # curl and others wait (curl: 1 s) for this before sending a larger body
        expect = next((value for name, value in self.headers if name == b"expect"), None)
        continues = expect is not None and expect.lower() == b"100-continue"
        if self.declared >= 0:  # without a 100 Continue, such a client sends no body: nothing to drop
            self._too_large(0 if continues or self.declared > _drain_bound(self.max_body_size) else self.declared)
        elif continues and self.transport is not None:
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def on_body(self, body: bytes) -> None:
        if self.drain_timer is not None:  # refused: dropped as it arrives
            self.drain_left -= len(body)
            if self.drain_left < 0:
                self._drained()
                raise httptools.HttpParserError("the refused body is still coming")  # stops the parser
            return
        if self.closing:
            return
        self.body_size += len(body)
        if self.body_size > self.max_body_size:
            self.body.clear()
            self._too_large(_drain_bound(self.max_body_size))
            return
        self.body.append(body)

    def on_message_complete(self) -> None:
        if self.drain_timer is not None:  # the refused body is all in: the 413 can be read, close
            self._drained()
            raise httptools.HttpParserError("closed after a refused body")  # stops the parser; ignored
        if self.closing:
            return
        method = self.parser.get_method()
        request = Request(method, self.url, self.headers, b"".join(self.body), self.client)
        self.url, self.headers, self.body, self.body_size = b"", [], [], 0
        self.pending.append((request, self.parser.should_keep_alive(), time.monotonic()))
        if self.app.metrics is not None:
            self.app.metrics.in_flight.inc()
        if not self.running:
            self._answer_next()

    def _answer_next(self) -> None:
        """Answer the requests waiting on this connection, in order, until one has to wait for an instance.

        The usual case takes no task and no future: an idle upstream connection calls `_forwarded` back."""
        while self.pending and not self.closing:
            request = self.pending[0][0]
            try:
                routed = self.app.route(request)
            except Exception:
                routed = _internal_error(request)
            if isinstance(routed, tuple):
                self._reply(routed)
                continue
            self.running, self.forward = True, routed
            loop = asyncio.get_running_loop()
            if not routed.pool.send(loop, routed.data, loop.time() + self.app.timeout, self._forwarded):
                loop.create_task(self._forward_connecting(routed))
            return
        self.running = False

    def _forwarded(self, answer: Response | None, error: Exception | None) -> None:
        forward = self.forward
        if isinstance(error, StaleConnection) and forward is not None:  # closed while idle: send it again
            asyncio.get_running_loop().create_task(self._forward_connecting(forward))
            return
        if answer is None:
            assert forward is not None
            assert error is not None
            answer = self.app.failed(forward, error)
        self._reply(answer)
        self._answer_next()

    async def _forward_connecting(self, forward: Forward) -> None:
        """The slower way, when no idle connection to the instance exists: connect first."""
        try:
            answer = await forward.pool.request(forward.data, self.app.timeout)
        except (UpstreamError, UpstreamTimeout) as error:
            answer = self.app.failed(forward, error)
        except Exception:
            answer = _internal_error(self.pending[0][0] if self.pending else None)
        self._reply(answer)
        self._answer_next()

    def _reply(self, answer: Answer) -> None:
        """Send the answer to the oldest waiting request."""
        forward, self.forward = self.forward, None
        if not self.pending:  # the client has gone
            return
        request, keep_alive, arrived = self.pending.popleft()
        self._write(answer, keep_alive, head_only=request.method == b"HEAD")
        metrics = self.app.metrics
        if metrics is not None:
            metrics.in_flight.dec()
            endpoint, deployment = (forward.endpoint, forward.deployment) if forward is not None else ("", "")
            metrics.answered(endpoint, deployment, answer[0], time.monotonic() - arrived)
        if self.app.spans is not None and forward is not None:  # spans: of forwarded requests only
            self.app.traced(forward, request.method, answer[0], time.monotonic() - arrived)

    def _write(self, answer: Answer, keep_alive: bool, head_only: bool = False, close: bool = True) -> None:
        transport = self.transport
        if transport is None or self.closing:
            return
        status, headers, body = answer
        transport.write(
            b"HTTP/1.1 %d %s\r\n%scontent-length: %d\r\n%s\r\n%s"
            % (
                status,
                _REASONS.get(status, b"Unknown"),
                headers,
                len(body),
                b"" if keep_alive else b"connection: close\r\n",
                b"" if head_only else body,
            )
        )
        if not keep_alive:
            self.closing = True
            if close:
                transport.close()  # after what is written: asyncio's and uvloop's close() flush first

    def _too_large(self, drain: int) -> None:
        """Refuse the body at once; then drop up to `drain` more bytes of it before closing (0: close now)."""
        self._refuse(413, f"the body exceeds the gateway's limit of {self.max_body_size} bytes", drain=drain)
        if self.drain_timer is None:
            raise httptools.HttpParserError("body too large")  # stops the parser; data_received ignores it

    def _refuse(self, status: int, message: str, *, drain: int = 0) -> None:
        """Answer at once with `connection: close`: the rest of the connection's bytes cannot be trusted. Then
        close, or first read and drop up to `drain` bytes of the request's body (for clients that send the
        whole body before they read: closed on unread bytes, the socket sends them a reset, not the answer)."""
        if self.closing:
            return
        if self.pending and self.app.metrics is not None:
            self.app.metrics.in_flight.dec(len(self.pending))
        self.pending.clear()
        answer = error_answer(status, message, new_request_id().encode())
        if drain <= 0 or self.transport is None:
            self._write(answer, keep_alive=False)
            return
        self._write(answer, keep_alive=False, close=False)
        self.drain_left = drain
        self.drain_timer = asyncio.get_running_loop().call_later(_DRAIN_S, self._drained)

    def _drained(self) -> None:
        """The refused body is all in, or past the bounds: close (what it still sends is reset)."""
        if self.drain_timer is not None:
            self.drain_timer.cancel()
            self.drain_timer = None
        if self.transport is not None:
            self.transport.close()


def _internal_error(request: Request | None) -> Answer:
    method = request.method.decode("latin-1") if request is not None else "a request"
    logger.exception("unexpected error while answering %s", method)
    return error_answer(500, "an internal error occurred in the gateway", new_request_id().encode())
