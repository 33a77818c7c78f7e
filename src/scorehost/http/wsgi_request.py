"""A WSGI request as the host sees it (`ScoreRequest`): its body read within the limit and the body timeout,
and whole (a body cut short or badly chunked is refused), its headers as `request_headers` shows them, and, for a
`@rawhttp` run(), Werkzeug's request object made on demand.

granian's body reader never raises: a body that ends early (the client closed its side, or sent a bad chunk) reads
as if it were whole. A body with a Content-Length is checked against it. A chunked body is read in one call,
which granian answers with nothing at all when the framing failed, so a chunked body that reads empty is refused:
the one kind of request this refuses that is not broken is an empty body sent chunked, which no client library
sends for an empty body (they send `Content-Length: 0`).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Iterator, Mapping
from typing import Any

from scorehost.compat.aml_request import AMLRequest
from scorehost.errors import IncompleteBody, PayloadTooLarge, RequestTimeout, ScorehostError
from scorehost.host.inputs import ScoreRequest
from scorehost.http.body_watch import PROTOCOL_KEY, BodyWatch, timeout_message
from scorehost.http.raw import raw_request

__all__ = ["DRAIN_MAX_BYTES", "DRAIN_MAX_SECONDS", "EnvironHeaders", "score_request"]

# A client that sends a whole body before reading the answer (Python's http.client, requests) reads a 413 only
# if the body is taken: past the limit, up to this much more is read and dropped, for at most this long.
DRAIN_MAX_BYTES = 1 << 30
DRAIN_MAX_SECONDS = 10.0
_CHUNK = 1 << 16


def score_request(
    environ: dict[str, Any],
    max_body_size: int,
    *,
    raw: bool,
    watch: BodyWatch | None = None,
    started: float | None = None,
    answer_headers: list[tuple[str, str]] | None = None,
) -> ScoreRequest:
    """The request `EntryScript.prepare()` takes: PayloadTooLarge past `max_body_size` (the rest then drained),
    IncompleteBody for a body cut short, RequestTimeout when `watch` stopped the read (the request arrived at
    `started`; the watch's own 408 carries `answer_headers`)."""
    if watch is None or PROTOCOL_KEY not in environ:  # only the granian front can answer early, and needs to
        body = _read_body(environ, max_body_size)
    else:
        slot = watch.begin(environ, time.monotonic() if started is None else started, answer_headers or [])
        try:
            body = _read_body(environ, max_body_size)
        except ScorehostError:  # a read the watch stopped ends short: a timeout, not a broken body
            if slot.end():
                raise RequestTimeout(timeout_message(watch.timeout)) from None
            raise
        if slot.end():
            raise RequestTimeout(timeout_message(watch.timeout))
    request = ScoreRequest(
        method=environ["REQUEST_METHOD"],
        body=body,
        query=environ.get("QUERY_STRING", ""),
        content_type=environ.get("CONTENT_TYPE", ""),
        headers=EnvironHeaders(environ),
    )
    if raw:
        request.raw = functools.partial(raw_request, AMLRequest, environ, body)
    return request


class EnvironHeaders(Mapping[str, str]):
    """A WSGI environ's headers as the reference's `request_headers` shows them: Werkzeug's Title-Case names.
    Read only when a script asks for them."""

    __slots__ = ("_environ", "_headers")

    def __init__(self, environ: Mapping[str, Any]) -> None:
        self._environ = environ
        self._headers: dict[str, str] | None = None

    def _items(self) -> dict[str, str]:
        if self._headers is not None:  # made once: dict(view) reads every key through __getitem__
            return self._headers
        environ = self._environ
        headers = {
            key[5:].replace("_", "-").title(): value for key, value in environ.items() if key.startswith("HTTP_")
        }
        for key, name in (("CONTENT_TYPE", "Content-Type"), ("CONTENT_LENGTH", "Content-Length")):
            if environ.get(key):
                headers[name] = environ[key]
        self._headers = headers
        return headers

    def __getitem__(self, name: str) -> str:
        return self._items()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items())

    def __len__(self) -> int:
        return len(self._items())


def _read_body(environ: Mapping[str, Any], limit: int) -> bytes:
    length = environ.get("CONTENT_LENGTH")
    stream = environ["wsgi.input"]
    if length and length.isdigit():
        size = int(length)
        if size > limit:
            _drain(stream, size)
            raise _too_large(limit)
        if not size:
            return b""
        body = bytes(stream.read(size))
        if len(body) < size:  # granian's reader returns what came before the connection ended
            raise IncompleteBody(
                f"The body ended after {len(body)} of the {size} bytes its Content-Length announced; send it whole."
            )
        return body
    if PROTOCOL_KEY in environ:  # granian: a chunked body, read whole, or nothing if its framing failed
        if "HTTP_TRANSFER_ENCODING" not in environ:
            return b""  # no Content-Length and not chunked: HTTP/1.1 requests without a body
        body = bytes(stream.read())
        if not body:
            raise IncompleteBody(
                "The chunked body ended before its last chunk, has a malformed chunk, or is empty; send it "
                "whole (an empty body with Content-Length: 0)."
            )
        if len(body) > limit:
            raise _too_large(limit)
        return body
    chunks: list[bytes] = []
    size = 0
    while chunk := stream.read(_CHUNK):  # a chunked body, counted as it arrives
        size += len(chunk)
        if size > limit:
            _drain(stream, DRAIN_MAX_BYTES)
            raise _too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def _drain(stream: Any, declared: int) -> None:
    """Read and drop what is left of a refused body, within the bounds, so the client reads the 413."""
    if declared > DRAIN_MAX_BYTES:
        return  # not worth reading: the connection is closed on the client, who may see a reset
    deadline = time.monotonic() + DRAIN_MAX_SECONDS
    left = declared
    while left > 0 and time.monotonic() < deadline:
        chunk = stream.read(min(_CHUNK, left))
        if not chunk:
            return
        left -= len(chunk)


def _too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"The body is larger than the {limit}-byte limit; send less, or raise --max-body-size.")
