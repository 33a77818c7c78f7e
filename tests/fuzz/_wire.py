"""Raw HTTP/1.1 over a socket for the fuzz tests: send any bytes, read back every answer, never hang.

httptools (llhttp, the gateway's own parser) reads our request first, to know how many answers to wait for and
whether the server is still waiting for more of it: then the write side is shut (FIN) so that it stops waiting.
A server may drop the answer to a half-closed connection; that is not an error, so `Exchange.answers` may be empty.
"""

from __future__ import annotations

import contextlib
import socket
import time
from dataclasses import dataclass, field

import httptools

__all__ = ["Answer", "Exchange", "exchange", "request_bytes"]

_READ_S = 10.0  # a whole exchange, on a busy machine; the servers answer these in milliseconds
_STALL_S = 3.0  # no byte for this long after a request we thought complete: shut the write side and wait again


@dataclass
class Answer:
    status: int
    headers: dict[str, str] = field(default_factory=dict)  # names in lower case; a repeated header: its last value
    body: bytes = b""
    complete: bool = False


@dataclass
class Exchange:
    """What went out and what came back."""

    sent: bytes
    answers: list[Answer]
    requests: int  # complete requests in `sent`, as llhttp reads it
    half_closed: bool  # the write side was shut: the server may have dropped its answer
    reset: bool = False  # the server reset the connection

    @property
    def first(self) -> Answer | None:
        return self.answers[0] if self.answers else None

    def describe(self) -> str:
        """The exchange for an assertion message: enough to replay it with `printf ... | nc`."""
        statuses = [answer.status for answer in self.answers]
        first = self.first
        head = ""
        if first is not None:
            head = f"\nfirst answer headers: {first.headers}\nfirst answer body: {first.body[:400]!r}"
        return f"sent {self.sent[:2000]!r}{'...' if len(self.sent) > 2000 else ''}\nanswers: {statuses}{head}"


def request_bytes(method: str, target: bytes, headers: list[tuple[bytes, bytes]], body: bytes = b"") -> bytes:
    """A request as it goes on the wire; `headers` exactly as given (no Content-Length added)."""
    lines = b"".join(name + b": " + value + b"\r\n" for name, value in headers)
    return method.encode("latin-1") + b" " + target + b" HTTP/1.1\r\n" + lines + b"\r\n" + body


class _Messages:
    """httptools callbacks: counts messages, and keeps each answer's status, headers and body."""

    def __init__(self, parser_kind: type) -> None:
        self.parser = parser_kind(self)
        self.done = 0
        self.answers: list[Answer] = []
        self.pending = False  # a message begun and not finished
        self.error = False

    def feed(self, data: bytes) -> None:
        if self.error:
            return
        try:
            self.parser.feed_data(data)
        except (httptools.HttpParserError, httptools.HttpParserUpgrade):
            self.error = True

    def on_message_begin(self) -> None:
        self.pending = True
        self.answers.append(Answer(0))

    def on_header(self, name: bytes, value: bytes) -> None:
        self.answers[-1].headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        if hasattr(self.parser, "get_status_code"):
            self.answers[-1].status = self.parser.get_status_code()

    def on_body(self, body: bytes) -> None:
        self.answers[-1].body += body

    def on_message_complete(self) -> None:
        self.pending = False
        if 100 <= self.answers[-1].status < 200:  # an interim answer (100 Continue): the real one follows
            self.answers.pop()
            return
        self.answers[-1].complete = True
        self.done += 1


def exchange(port: int, data: bytes, *, host: str = "127.0.0.1") -> Exchange:
    """Send `data` on a new connection and read the answers until the server closes, or has answered every
    complete request in `data`; shut the write side when `data` ends inside a request."""
    ours = _Messages(httptools.HttpRequestParser)
    ours.feed(data)
    expected = ours.done
    incomplete = ours.pending and not ours.error  # the server would wait for the rest
    theirs = _Messages(httptools.HttpResponseParser)
    result = Exchange(data, theirs.answers, expected, half_closed=False)
    with socket.create_connection((host, port), timeout=_READ_S) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            sock.sendall(data)
            if incomplete:
                _shut(sock, result)
        except OSError:  # the server answered early and closed (a 413, a 400): read what it said
            pass
        deadline = time.monotonic() + _READ_S
        while time.monotonic() < deadline:
            if theirs.done >= expected and not theirs.pending and not incomplete and not ours.error and expected:
                break  # every request answered, and the connection kept alive: nothing more will come
            sock.settimeout(min(_STALL_S, max(0.01, deadline - time.monotonic())))
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                if result.half_closed:
                    break
                _shut(sock, result)  # the server waits for more than we meant to send
                continue
            except ConnectionResetError:
                result.reset = True
                break
            if not chunk:
                break
            theirs.feed(chunk)
    return result


def _shut(sock: socket.socket, result: Exchange) -> None:
    result.half_closed = True
    with contextlib.suppress(OSError):  # already closed by the server
        sock.shutdown(socket.SHUT_WR)
