"""The gateway's HTTP/1.1 server side: an asyncio protocol per client connection, parsed by httptools.

Not granian, by measurement (bench/README.md): on this 2-core machine a granian RSGI "hello" costs about
75 us of CPU per request (the Rust runtime hands every request to the Python loop's thread and back),
an asyncio protocol on uvloop with httptools about 7 us. A gateway must fit in roughly 70 us per request
to keep 0.8x of a scoring server's requests/s, so the hand-off alone would spend it.

Requests on one connection are answered in order (pipelined ones wait their turn); a body past the limit
is answered 413 without reading the rest, and the connection closed.
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


class GatewayProtocol(asyncio.Protocol):
    """One client connection."""

    __slots__ = (
        "app",
        "body",
        "body_size",
        "client",
        "closing",
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
            if not self.closing:
                self._refuse(400, "the request is not valid HTTP/1.1")

    def connection_lost(self, exc: Exception | None) -> None:
        self.closing = True
        if self.pending and self.app.metrics is not None:
            self.app.metrics.in_flight.dec(len(self.pending))  # the caller left: never answered
        self.pending.clear()

    # httptools callbacks
    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        name = name.lower()
        if name == b"content-length" and value.strip().isdigit() and int(value) > self.max_body_size:
            self._too_large()
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        # curl and others wait (curl: 1 s) for this before sending a larger body
        expect = next((value for name, value in self.headers if name == b"expect"), None)
        if expect is not None and expect.lower() == b"100-continue" and self.transport is not None:
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def on_body(self, body: bytes) -> None:
        self.body_size += len(body)
        if self.body_size > self.max_body_size:
            self._too_large()
        self.body.append(body)

    def on_message_complete(self) -> None:
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

    def _write(self, answer: Answer, keep_alive: bool, head_only: bool = False) -> None:
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
            transport.close()

    def _too_large(self) -> None:
        self._refuse(413, f"the body exceeds the gateway's limit of {self.max_body_size} bytes")
        raise httptools.HttpParserError("body too large")  # stops the parser; data_received ignores it

    def _refuse(self, status: int, message: str) -> None:
        """Answer at once and close: the rest of the connection's bytes cannot be trusted."""
        if self.closing:
            return
        if self.pending and self.app.metrics is not None:
            self.app.metrics.in_flight.dec(len(self.pending))
        self.pending.clear()
        self._write(error_answer(status, message, new_request_id().encode()), keep_alive=False)


def _internal_error(request: Request | None) -> Answer:
    method = request.method.decode("latin-1") if request is not None else "a request"
    logger.exception("unexpected error while answering %s", method)
    return error_answer(500, "an internal error occurred in the gateway", new_request_id().encode())
