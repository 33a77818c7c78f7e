"""The gateway's HTTP/1.1 server side: an asyncio protocol per client connection, parsed by httptools.

Not granian, by measurement (bench/README.md): on this 2-core machine a granian RSGI "hello" costs about
75 us of CPU per request (the Rust runtime hands every request to the Python loop's thread and back),
an asyncio protocol on uvloop with httptools about 7 us. A gateway must fit in roughly 70 us per request
to keep 0.8x of a scoring server's requests/s, so the hand-off alone would spend it.

Requests on one connection are answered in order (pipelined ones wait their turn). Each is decided from
its headers (`GatewayApp.decide`), before a byte of its body is read: a request the gateway answers itself
(401, 404, 503, ...) never has its body kept. A small one (at most `_SMALL_BODY`, no `Expect`) is read and
dropped, keeping the connection; a larger one is not read at all: the answer goes out in turn with
`connection: close`, and the connection is closed. A body to forward is reserved in the worker's
budget first (`budget.py`), and only then is `100 Continue` sent.

A body past the limit is answered 413 at once, with `connection: close`; the rest of it is then read and
dropped as it arrives (never kept), up to `_drain_bound` bytes and `_DRAIN_S` seconds, before the connection
is closed. Clients that send the whole body before reading (http.client, requests) thus read the 413: closed
on unread bytes, the socket would send them a reset instead. A body declared longer than that bound is
refused and closed without waiting.

Time limits, enforced by the worker's sweep (`worker.py`), not by timers: a request's line and headers
must arrive within the header timeout, its body must not stall for the body timeout (both 408, then
closed), a keep-alive connection is closed after the idle timeout without a request (a new one after the
header timeout), and an instance that does not answer within `--timeout` is given up (504).
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from http import HTTPStatus
from typing import cast

import httptools

from scorehost.deploy.gateway.app import Answer, Forward, GatewayApp, error_answer
from scorehost.deploy.gateway.upstream import Connection, Response, StaleConnection, UpstreamError, UpstreamTimeout
from scorehost.deploy.gateway.worker import Worker
from scorehost.telemetry.request_ids import new_request_id

__all__ = ["GatewayProtocol"]

logger = logging.getLogger("scorehost.gateway")

_REASONS = {status.value: status.phrase.encode() for status in HTTPStatus}
_DRAIN_S = 20.0  # at most this long reading and dropping a refused body, from the 413 on
_DRAIN_MIN, _DRAIN_MAX = 64 * 1024 * 1024, 1024 * 1024 * 1024
_SMALL_BODY = 64 * 1024  # a body this small is never waited for in the budget, and read to be dropped
_MAX_HEAD = 64 * 1024  # bytes of request line and headers: 431 past it (llhttp has no bound of its own)
_MAX_PIPELINED = 32  # requests waiting on one connection; past it, it is not read until answers go out
_RETRY = b"retry-after: 1\r\n"
_SPECIAL = {b"content-length": 1, b"transfer-encoding": 2, b"expect": 3}  # the headers that say what body comes

_LINGER_S, _LINGER_BYTES = 2.0, 1024 * 1024  # after a refusal that closes: what is still read and dropped

# What a connection is reading now; its deadline (`worker.py`) follows from it. FRESH and IDLE first: a
# read in a phase up to IDLE begins a request; STOPPED and LINGER last: no read is parsed.
FRESH, IDLE, HEADERS, BODY, WAIT, DRAIN, STOPPED, LINGER = range(8)


def _drain_bound(max_body_size: int) -> int:
    """The most bytes of a refused body read and dropped: 4 times the limit, within [64 MiB, 1 GiB]."""
    return min(max(4 * max_body_size, _DRAIN_MIN), _DRAIN_MAX)


class GatewayProtocol(asyncio.Protocol):
    """One client connection."""

    __slots__ = (
        "app",
        "arrived",
        "body",
        "body_size",
        "chunked",
        "client",
        "closing",
        "deadline",
        "decided",
        "declared",
        "drain_left",
        "dropping",
        "eof",
        "expect",
        "forward",
        "head_size",
        "headers",
        "parser",
        "paused",
        "pending",
        "phase",
        "reserved",
        "running",
        "transport",
        "upstream",
        "upstream_deadline",
        "url",
        "worker",
    )

    def __init__(self, app: GatewayApp, worker: Worker) -> None:
        self.app = app
        self.worker = worker
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.client = b"unknown"
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.head_size = 0
        self.declared = -1  # the current request's content-length, if it has one
        self.chunked = False  # ... or whether it has a transfer-encoding
        self.expect = False  # ... and whether it asks for a 100 Continue
        self.decided: Answer | Forward | None = None  # what its headers decided
        self.dropping = False  # its body is read and dropped: the gateway answers it itself
        self.body: list[bytes] = []
        self.body_size = 0
        self.reserved = 0  # bytes of the worker's budget its body holds
        self.arrived = 0.0  # when it was read whole (time.monotonic())
        self.phase = FRESH
        self.deadline = 0.0  # 0: to be armed by the worker's next sweep
        self.drain_left = 0  # while a refused body is dropped: how many more bytes of it are read
        self.pending: collections.deque[tuple[Answer | Forward, bool, float, bytes]] = collections.deque()
        self.running = False
        self.closing = False
        self.paused = False
        self.eof = False  # the client shut its side
        self.forward: Forward | None = None
        self.upstream: Connection | None = None  # the connection the forward is on, when it took an idle one
        self.upstream_deadline = 0.0  # ... and when the sweep expires it (time.monotonic())

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports do not subclass asyncio's
        if not self.worker.admit(self):
            self.closing = True
            transport.close()
            return
        peer = transport.get_extra_info("peername")
        if peer:
            self.client = str(peer[0]).encode()

    def data_received(self, data: bytes) -> None:
        phase = self.phase
        if phase <= IDLE:  # a request begins (not httptools' on_message_begin: a call less per request)
            self.phase, self.deadline = HEADERS, 0.0
        elif phase >= STOPPED:  # bytes read before the pause took effect, or dropped while lingering
            self.drain_left -= len(data)
            if phase == LINGER and self.drain_left < 0:
                self._drained()
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._refuse(400, "upgrades are not supported")
        except httptools.HttpParserError:
            if self.phase == DRAIN:  # a refused body that is not valid HTTP/1.1 either
                self._drained()
            elif not self.closing and self.phase != STOPPED:
                self._refuse(400, "the request is not valid HTTP/1.1")
            return
        if self.phase == IDLE and self.url:  # a pipelined request began in this read, after a whole one
            self.phase, self.deadline = HEADERS, 0.0
        if self.phase == HEADERS:  # still reading a head: bound it (once per read, not per header)
            self.head_size += len(data)
            if self.head_size > _MAX_HEAD:
                self._refuse(431, f"the request line and headers exceed the gateway's limit of {_MAX_HEAD} bytes")

    def eof_received(self) -> bool | None:
        """The client shut its side. A request cut short is never forwarded: 400, in turn, then closed.
        Answers still owed are sent first (True keeps the transport); else close now."""
        self.eof = True
        if self.closing or self.phase in (DRAIN, LINGER):
            return None
        if self.phase in (HEADERS, BODY, WAIT):
            part = "headers" if self.phase == HEADERS else "body"
            self._stop(error_answer(400, f"the connection ended in the middle of the request's {part}", _id()), b"")
            return True
        return True if self.pending else None

    def connection_lost(self, exc: Exception | None) -> None:
        self.closing = True
        self.worker.connections.discard(self)
        if self.upstream is not None:  # no sweep visits this connection any more: its deadline would not pass
            self.upstream.abandon()
            self.upstream = None
        self._release_body()
        budget = self.worker.budget
        for item, *_ in self.pending:
            if isinstance(item, Forward) and item.reserved:
                budget.give(item.reserved)
                item.reserved = 0
        if self.pending and self.app.metrics is not None:
            self.app.metrics.in_flight.dec(len(self.pending))  # the caller left: never answered
        self.pending.clear()

    # httptools callbacks
    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        name = name.lower()
        special = _SPECIAL.get(name)
        if special is not None:
            if special == 1:
                self.declared = int(value) if value.strip().isdigit() else -1  # llhttp refuses a bad one
            elif special == 2:
                self.chunked = True
            else:
                self.expect = value.lower() == b"100-continue"
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        if self.closing:
            return
        method = self.parser.get_method()
        try:
            decided = self.app.decide(method, self.url, self.headers, self.client)
        except Exception:
            decided = _internal_error(method)
        declared, expect = self.declared, self.expect
        has_body = declared > 0 or self.chunked
        self.url, self.headers, self.head_size, self.declared, self.chunked, self.expect = b"", [], 0, -1, False, False
        self.decided = decided
        self.phase, self.deadline = BODY, 0.0
        if isinstance(decided, tuple):  # the gateway's own answer: the body is never kept
            if has_body:
                if 0 < declared <= _SMALL_BODY and not expect:
                    self.dropping = True  # most likely in this very read: cheaper than a new connection
                else:  # not read at all: a client sending it anyway is reset
                    self._stop(decided, method)
                    raise httptools.HttpParserError("refused from its headers")  # stops the parser
            return
        max_body_size = self.worker.limits.max_body_size
        if declared > max_body_size:  # without a 100 Continue, such a client sends no body: nothing to drop
            self._too_large(0 if expect or declared > _drain_bound(max_body_size) else declared)
            return
        if not has_body:
            return
        budget = self.worker.budget
        if declared <= _SMALL_BODY:  # a chunked one reserves as it grows
            self.reserved = declared if declared > 0 else _SMALL_BODY
            budget.hold(self.reserved)
        elif budget.take(declared, self):
            self.reserved = declared
        else:
            self.phase = WAIT  # reads nothing more until admitted() (bytes of this read are kept)
            self._pause(True)
            self.expect = expect
            return
        if expect:
            self._continue()

    def on_body(self, body: bytes) -> None:
        if self.phase == DRAIN:  # refused: dropped as it arrives
            self.drain_left -= len(body)
            if self.drain_left < 0:
                self._drained()
                raise httptools.HttpParserError("the refused body is still coming")  # stops the parser
            return
        if self.dropping or self.closing or self.phase == STOPPED:
            return
        self.deadline = 0.0  # progress: the body timeout starts over
        size = self.body_size = self.body_size + len(body)
        self.body.append(body)
        if size > self.reserved:  # chunked, past what it reserved (or bytes that came while it waits)
            max_body_size = self.worker.limits.max_body_size
            if size > max_body_size:
                self._too_large(_drain_bound(max_body_size))
            elif self.phase == BODY:  # the reservation doubles, or the connection waits
                more = min(2 * size, max_body_size) - self.reserved
                if self.worker.budget.take(more, self):
                    self.reserved += more
                else:
                    self.phase = WAIT
                    self._pause(True)

    def on_message_complete(self) -> None:
        if self.phase == DRAIN:  # the refused body is all in: the 413 can be read, close
            self._drained()
            raise httptools.HttpParserError("closed after a refused body")  # stops the parser; ignored
        if self.closing or self.phase == STOPPED:
            return
        decided, self.decided = self.decided, None
        assert decided is not None
        if self.phase == WAIT:  # all of it came with the headers: it is in memory anyway
            self.worker.budget.cancel(self)
            self.worker.budget.hold(self.body_size - self.reserved)
            self.reserved = self.body_size
            self._pause(False)
        if self.dropping:
            self.dropping = False
        elif isinstance(decided, Forward):
            self.app.seal(decided, self.body, self.body_size)
            decided.reserved = self.reserved
            if self.reserved > self.body_size:  # a chunked body's unused reservation
                self.worker.budget.give(self.reserved - self.body_size)
                decided.reserved = self.body_size
        self.body, self.body_size, self.reserved = [], 0, 0
        self.phase, self.deadline = IDLE, 0.0
        self.arrived = time.monotonic()
        self._enqueue(decided, self.parser.should_keep_alive(), self.parser.get_method())

    # the worker's budget and sweep
    def admitted(self, size: int) -> None:
        """The budget reserved `size` bytes for the body: read it."""
        self.reserved += size
        if self.phase != WAIT:
            return
        self.phase, self.deadline = BODY, 0.0
        if self.expect and not self.body_size:
            self._continue()
        self.expect = False
        self._pause(False)

    def _continue(self) -> None:
        """Invite the body. Not while earlier requests wait for their answers: a 100 would read as theirs
        (the client sends the body anyway after waiting a little)."""
        if self.transport is not None and not self.pending:
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def check(self, now: float) -> None:
        """The sweep's visit: arm the deadline of the phase the connection is in, or act on it."""
        upstream = self.upstream
        if upstream is not None and now >= self.upstream_deadline:
            self.upstream = None
            upstream.expire()  # 504, through _forwarded
            return
        phase = self.phase
        if phase == LINGER:
            if now >= self.deadline:
                self._drained()
            return
        if self.paused and phase != WAIT:  # not read for now (answers to send first): not the client's delay
            self.deadline = 0.0
            return
        if self.deadline == 0.0:
            if phase == STOPPED or (phase == IDLE and self.pending) or self.closing:
                return  # answers on the way: the upstream timeout bounds them
            limits = self.worker.limits
            if phase in (HEADERS, FRESH):
                timeout = limits.header_timeout
            else:
                timeout = limits.idle_timeout if phase == IDLE else limits.body_timeout
            self.deadline = now + timeout
        elif now >= self.deadline and not self.closing:
            limits = self.worker.limits
            if phase == HEADERS:
                self._expired(f"the request's headers did not arrive within {limits.header_timeout:g} s")
            elif phase == BODY:
                self._expired(f"no byte of the request's body came for {limits.body_timeout:g} s")
            elif phase == WAIT:
                message = "the gateway is reading other large bodies; try again shortly"
                self._stop(error_answer(503, message, new_request_id().encode(), _RETRY), b"")
            elif phase == DRAIN:
                self._drained()
            elif self.transport is not None and not self.pending:  # FRESH, IDLE: nothing half-sent
                self.closing = True
                self.transport.close()

    def _expired(self, message: str) -> None:
        self._stop(error_answer(408, message, new_request_id().encode()), b"")

    # answers, in order
    def _enqueue(self, item: Answer | Forward, keep_alive: bool, method: bytes) -> None:
        self.pending.append((item, keep_alive, self.arrived, method))
        if self.app.metrics is not None:
            self.app.metrics.in_flight.inc()
        if len(self.pending) > _MAX_PIPELINED:
            self._pause(True)
        if not self.running:
            self._answer_next()

    def _answer_next(self) -> None:
        """Answer the requests waiting on this connection, in order, until one has to wait for an instance.

        The usual case takes no task and no future: an idle upstream connection calls `_forwarded` back."""
        while self.pending and not self.closing:
            item = self.pending[0][0]
            if isinstance(item, tuple):
                self._reply(item)
                continue
            self.running, self.forward = True, item
            upstream = item.pool.send(item.data, self._forwarded)
            if upstream is None:
                asyncio.get_running_loop().create_task(self._forward_connecting(item))
            else:
                self.upstream, self.upstream_deadline = upstream, time.monotonic() + self.app.timeout
            return
        self.running = False
        if self.eof and not self.closing and self.transport is not None:  # all owed answers are out
            self.closing = True
            self.transport.close()
        elif self.paused and self.phase != WAIT and self.phase != STOPPED:
            self._pause(False)

    def _forwarded(self, answer: Response | None, error: Exception | None) -> None:
        forward, self.upstream = self.forward, None
        if isinstance(error, StaleConnection) and forward is not None:  # closed while idle: send it again
            asyncio.get_running_loop().create_task(self._forward_connecting(forward))
            return
        if answer is None:
            assert forward is not None
            assert error is not None
            self._reply(self.app.failed(forward, error))
        elif forward is not None:  # the deployment's answer: it says which deployment gave it
            if answer[0] >= 500 and answer is not (own := self.app.unhosted(forward, answer)):
                self._reply(own)  # not the host's: Serve's or its HAProxy's, for a replica that died or is full
            else:
                self._reply(answer if forward.document is None else self.app.document(forward, answer), forward.served)
        else:
            self._reply(answer)
        self._answer_next()

    async def _forward_connecting(self, forward: Forward) -> None:
        """The slower way, when no idle connection to the instance exists: connect first."""
        served = b""
        try:
            answer = await forward.pool.request(forward.data, self.app.timeout)
            if answer[0] >= 500 and answer is not (own := self.app.unhosted(forward, answer)):
                answer = own  # not the host's: the gateway's own, as for an instance it cannot reach
            else:
                if forward.document is not None:
                    answer = self.app.document(forward, answer)
                served = forward.served
        except (UpstreamError, UpstreamTimeout) as error:
            answer = self.app.failed(forward, error)
        except Exception:
            answer = _internal_error(self.pending[0][3] if self.pending else None)
        self._reply(answer, served)
        self._answer_next()

    def _reply(self, answer: Answer, served: bytes = b"") -> None:
        """Send the answer to the oldest waiting request (`served`: the answering deployment's header line)."""
        forward, self.forward = self.forward, None
        if not self.pending:  # the client has gone
            return
        item, keep_alive, arrived, method = self.pending.popleft()
        if isinstance(item, Forward) and item.reserved:  # its body is no longer needed
            self.worker.budget.give(item.reserved)
            item.reserved, item.data = 0, b""
        self._write(answer, keep_alive, method == b"HEAD", True, served)
        metrics = self.app.metrics
        if metrics is not None:
            metrics.in_flight.dec()
            endpoint, deployment = (forward.endpoint, forward.deployment) if forward is not None else ("", "")
            metrics.answered(endpoint, deployment, answer[0], time.monotonic() - arrived)
        if self.app.spans is not None and forward is not None:  # spans: of forwarded requests only
            self.app.traced(forward, method, answer[0], time.monotonic() - arrived)

    def _write(
        self, answer: Answer, keep_alive: bool, head_only: bool = False, close: bool = True, served: bytes = b""
    ) -> None:
        transport = self.transport
        if transport is None or self.closing:
            return
        status, headers, body = answer
        transport.write(
            b"HTTP/1.1 %d %s\r\n%s%scontent-length: %d\r\n%s\r\n%s"
            % (
                status,
                _REASONS.get(status, b"Unknown"),
                served,
                headers,
                len(body),
                b"" if keep_alive else b"connection: close\r\n",
                b"" if head_only else body,
            )
        )
        if not keep_alive:
            self.closing = True
            if close and self.phase == STOPPED:
                self._linger()
            elif close:
                transport.close()  # after what is written: asyncio's and uvloop's close() flush first

    # refusals
    def _stop(self, answer: Answer, method: bytes) -> None:
        """Read nothing more: answer with `connection: close` once the requests before it are answered."""
        self._release_body()
        self.decided, self.dropping = None, False
        self.phase, self.arrived = STOPPED, time.monotonic()
        self._pause(True)
        self._enqueue(answer, False, method)

    def _too_large(self, drain: int) -> None:
        """Refuse the body at once; then drop up to `drain` more bytes of it before closing (0: close now)."""
        max_body_size = self.worker.limits.max_body_size
        self._refuse(413, f"the body exceeds the gateway's limit of {max_body_size} bytes", drain=drain)
        if self.phase != DRAIN:
            raise httptools.HttpParserError("body too large")  # stops the parser; data_received ignores it

    def _refuse(self, status: int, message: str, *, drain: int = 0) -> None:
        """Answer at once with `connection: close`: the rest of the connection's bytes cannot be trusted. Then
        close, or first read and drop up to `drain` bytes of the request's body (for clients that send the
        whole body before they read: closed on unread bytes, the socket sends them a reset, not the answer)."""
        if self.closing:
            return
        self._release_body()
        for item, *_ in self.pending:
            if isinstance(item, Forward) and item.reserved:
                self.worker.budget.give(item.reserved)
                item.reserved = 0
        if self.pending and self.app.metrics is not None:
            self.app.metrics.in_flight.dec(len(self.pending))
        self.pending.clear()
        answer = error_answer(status, message, new_request_id().encode())
        if drain <= 0 or self.transport is None:
            self._write(answer, keep_alive=False)
            return
        self._write(answer, keep_alive=False, close=False)
        self.drain_left = drain
        self.phase, self.deadline = DRAIN, time.monotonic() + _DRAIN_S
        self._pause(False)

    def _linger(self) -> None:
        """Closing while the request's body may still be coming: bytes unread at close() make the kernel
        send a reset, which can destroy the answer before the client reads it. So shut our side (the answer,
        then FIN) and drop what still comes, up to `_LINGER_BYTES` and `_LINGER_S` (never kept), then close."""
        transport = self.transport
        assert transport is not None
        try:
            if self.eof or not transport.can_write_eof():  # nothing more is coming, or no half-close
                raise ConnectionError
            transport.write_eof()
        except OSError:  # ConnectionError, or the client is gone already
            transport.close()
            return
        self.phase, self.drain_left, self.deadline = LINGER, _LINGER_BYTES, time.monotonic() + _LINGER_S
        if self.paused:
            self.paused = False
            transport.resume_reading()

    def _drained(self) -> None:
        """The refused body is all in, or past the bounds: close (what it still sends is reset)."""
        self.phase = STOPPED
        if self.transport is not None:
            self.transport.close()

    def _release_body(self) -> None:
        """Give back what the current request's body holds (and stop waiting for the budget)."""
        if self.phase == WAIT:
            self.worker.budget.cancel(self)
        if self.reserved:
            self.worker.budget.give(self.reserved)
        self.body, self.body_size, self.reserved = [], 0, 0

    def _pause(self, pause: bool) -> None:
        if pause != self.paused and self.transport is not None and not self.transport.is_closing():
            self.paused = pause
            if pause:
                self.transport.pause_reading()
            else:
                self.transport.resume_reading()


def _id() -> bytes:
    return new_request_id().encode()


def _internal_error(method: bytes | None) -> Answer:
    logger.exception("unexpected error while answering %s", method.decode("latin-1") if method else "a request")
    return error_answer(500, "an internal error occurred in the gateway", new_request_id().encode())
