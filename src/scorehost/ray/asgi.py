"""The scoring app offered to Serve as ASGI: answered on the replica's event loop while run() is fast, on a
pool thread otherwise.

A general WSGI-to-ASGI bridge (a2wsgi's WSGIMiddleware) moves every message between the event loop and
the request's thread through a queue; measured on the benchmark model (bench/on_ray.py), scorehost on Ray
then served about half the requests/s of a bare Serve deployment. Here the body is read on the loop and the
whole request is answered in one call (`ScoringApp.respond`, where run() executes under the gate's
deadline, as on a worker's request thread). The WSGI environ itself is a2wsgi's `build_environ`.

Where that call runs is measured, not assumed. Handing it to a pool thread and back costs 75-95 µs of CPU
on these machines (futex wake-ups and GIL hand-offs), as much as a small model's whole predict(). A bare
Serve deployment calls its model on the loop; so does this front while the answers made there take under
`INLINE_MAX_S` of CPU time (as `LoopTrials` judges them) and nothing else is running the script: under steady
load a request waits on the loop for calls still on the pool to end rather than join them. A script that turns
slow goes back to the pool within a few calls (at once after one past `SLOW_CALL_S`), so the loop, which also
serves Serve's health checks, is never held for long. Scripts declared thread-safe (`threads` > 1) always use
the pool, where their calls overlap. Scripts with run_batch() are answered through the loop batcher, whose
requests wait together on the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import time
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from a2wsgi.wsgi import build_environ

from scorehost.http.app import ScoringApp
from scorehost.http.pipeline import RUN_TIME_HEADER
from scorehost.ray.loop_trials import LoopTrials

__all__ = ["AsgiFront"]

Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

# Serve puts the request's `x-request-id` on every answer itself (the caller's, or the one it made and passed in);
# the app's own copy would repeat it.
_FRONT_HEADERS = frozenset({"x-request-id"})
_DONE = object()
_WARM_UP = 20  # answers made on the pool before the loop is tried


class AsgiFront:
    """ASGI callable answering with `app`; requests beyond `threads` at once wait for a pool thread."""

    def __init__(self, app: ScoringApp, *, threads: int, inline: bool = True) -> None:
        self.app = app
        self.executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="scorehost-request")
        self.inline = inline  # may answer on the loop (run() one at a time only)
        self._trials = LoopTrials(warm_up=_WARM_UP)
        self._on_pool = 0  # answers being made on pool threads now
        self._drained = asyncio.Event()  # set while nothing is on the pool
        self._drained.set()

    def _respond_timed(self, environ: Any, on_loop: bool) -> Any:
        began = time.perf_counter()
        began_cpu = time.thread_time() if on_loop else 0.0  # a system call: only the loop's calls are judged by it
        answer = None
        try:
            answer = self.app.respond(environ)
            return answer
        finally:
            seconds = _call_seconds(answer, time.perf_counter() - began)
            if on_loop:
                self._trials.add_loop(seconds, time.thread_time() - began_cpu, time.monotonic())
            else:
                self._trials.add_pool(seconds)

    async def _answer_here(self) -> bool:
        """Whether to answer on the loop: while calls there are quick (or being tried), once those still on the
        pool are done. Never beside a call on the pool: the loop would wait for the gate behind it (or behind a hung
        run()). Under steady load something is always on the pool, so a request that could be answered here waits
        for the pool to drain instead of joining it (at most the app's timeout: its calls end by their deadlines)."""
        if not (self.inline and self._trials.wants_loop(time.monotonic())):
            return False
        if self._on_pool:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._drained.wait(), self.app.timeout)
        return self._on_pool == 0 and self._trials.on_loop

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
        if self.app.loop_batcher is not None:  # requests meet in batches on this loop (http/batching/loop.py)
            status, headers, content = await self.app.respond_async(environ)
        elif await self._answer_here():
            status, headers, content = self._respond_timed(environ, True)
        else:
            self._on_pool += 1
            self._drained.clear()
            try:
                respond = self._respond_timed
                status, headers, content = await loop.run_in_executor(self.executor, respond, environ, False)
            finally:
                self._on_pool -= 1
                if not self._on_pool:
                    self._drained.set()
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


def _call_seconds(answer: Any, elapsed: float) -> float:
    """How long the script's run() took, from the time the app puts on its answer: not `elapsed`, which holds the
    wait for the gate too (on the pool, behind other requests); `elapsed` for answers without a run()."""
    if answer is not None:
        for name, value in answer[1]:
            if name == RUN_TIME_HEADER:
                return float(value) / 1000
    return elapsed


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
