"""The scoring app offered to Serve as ASGI, with one thread hop per request.

A general WSGI-to-ASGI bridge (a2wsgi's WSGIMiddleware) moves every message between the event loop and
the request's thread through a queue; measured on the benchmark model (bench/on_ray.py), scorehost on Ray
then served about half the requests/s of a bare Serve deployment. Here the body is read on the loop, the
whole request is answered on one pool thread (`ScoringApp.respond`, where run() executes under the gate's
deadline, as on a worker's request thread), and the answer is sent from the loop. The WSGI environ itself
is a2wsgi's `build_environ`.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from a2wsgi.wsgi import build_environ

from scorehost.http.app import ScoringApp

__all__ = ["AsgiFront"]

Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

# Serve puts the request's `x-request-id` on every answer itself (the caller's, or the one it made and passed in);
# the app's own copy would repeat it.
_FRONT_HEADERS = frozenset({"x-request-id"})
_DONE = object()


class AsgiFront:
    """ASGI callable answering with `app`; requests beyond `threads` at once wait for a pool thread."""

    def __init__(self, app: ScoringApp, *, threads: int) -> None:
        self.app = app
        self.executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="scorehost-request")

    async def __call__(self, scope: Message, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        body = await self._read_body(scope, receive)
        http_scope: Any = scope
        stream: Any = io.BytesIO(body)  # stands in for a2wsgi's Body: the app only read()s it
        environ: Any = build_environ(http_scope, stream)
        loop = asyncio.get_running_loop()
        status, headers, content = await loop.run_in_executor(self.executor, self.app.respond, environ)
        raw_headers = [
            (name.lower().encode("latin-1"), value.encode("latin-1"))
            for name, value in headers
            if name.lower() not in _FRONT_HEADERS
        ]
        await send({"type": "http.response.start", "status": status, "headers": raw_headers})
        if isinstance(content, bytes):
            await send({"type": "http.response.body", "body": content})
            return
        await self._stream(content, send, loop)

    async def _read_body(self, scope: Message, receive: Receive) -> bytes:
        """The whole body; past the app's limit, no more than one byte over it (the app then answers 413)."""
        limit = self.app.max_body_size
        length = next((value for name, value in scope.get("headers", []) if name == b"content-length"), None)
        if length is not None and length.isdigit() and int(length) > limit:
            return b""  # refused from its declared length, before a byte is read
        chunks: list[bytes] = []
        size, more = 0, True
        while more and size <= limit:
            message = await receive()
            if message["type"] == "http.disconnect":
                break
            chunk = message.get("body", b"")
            chunks.append(chunk)
            size += len(chunk)
            more = message.get("more_body", False)
        return b"".join(chunks)

    async def _stream(self, content: Iterator[bytes], send: Send, loop: asyncio.AbstractEventLoop) -> None:
        """A streamed answer (a raw script's generator): each chunk made on a pool thread, sent from the loop."""
        try:
            while (chunk := await loop.run_in_executor(self.executor, next, content, _DONE)) is not _DONE:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
        finally:
            close = getattr(content, "close", None)
            if close is not None:
                await loop.run_in_executor(self.executor, close)


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
