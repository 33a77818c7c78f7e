"""Serve an app on a socket we own, with granian's Rust HTTP worker inside this process.

Granian parses HTTP and moves bytes on Rust threads, without the GIL; Python threads only run the
app. Its own process manager cannot do what the supervisor does (fork after `--preload`, keep a dead
worker's socket and queued connections, report why a worker died), so we drive one granian worker
per process ourselves. That needs granian's internal worker API, which is why `pyproject.toml` pins
granian to one minor release: everything that touches it is in this module.
"""

from __future__ import annotations

import asyncio
import io
import logging
import socket
import threading
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from granian import _futures, _granian
from granian.http import HTTP1Settings

__all__ = ["GranianAsyncFront", "GranianFront"]

Answer = tuple[int, list[tuple[str, str]], bytes | Iterator[bytes]]
# The WSGI environ in, the whole answer out (status, headers, body): no start_response, no iterable.
Responder = Callable[[dict[str, Any]], Answer]
AsyncResponder = Callable[[dict[str, Any]], Awaitable[Answer]]
logger = logging.getLogger("scorehost.worker")

# The stubs granian ships lag behind its extension's real signatures (they lack the IPC argument).
_WSGIWorker: Any = _granian.WSGIWorker
_RSGIWorker: Any = _granian.RSGIWorker
_future_watcher_wrapper: Any = _futures._future_watcher_wrapper
SocketHolder: Any = _granian.SocketHolder
_new_cbscheduler: Any = _futures._new_cbscheduler
WorkerSignal: Any = _granian.WorkerSignal

# granian listen()s again on the socket it is given: the same backlog as sockets.py binds with, not smaller.
LISTEN_BACKLOG = 2048
_INTERNAL_ERROR = b'{"message":"An internal error occurred in scorehost; the log has the traceback."}'


class _Front:
    """What both fronts share: the socket, and the shutdown signal granian's worker watches."""

    def __init__(self, sock: socket.socket) -> None:
        self.shutdown_signal = WorkerSignal()
        self._stopped = threading.Event()
        self.shutdown_signal.add_cb(self._stopped.set)
        self._sock = sock
        self._uds = sock.family == socket.AF_UNIX

    def stop(self) -> None:
        """Stop accepting and let in-flight requests finish."""
        self.shutdown_signal.set()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until the worker has stopped and drained; False if `timeout` passed first."""
        return self._stopped.wait(timeout)


class GranianFront(_Front):
    """One granian HTTP/1.1 worker answering with `respond` on `sock`, on `python_threads` Python threads."""

    def __init__(
        self, respond: Responder, sock: socket.socket, *, python_threads: int, backpressure: int = 512
    ) -> None:
        super().__init__(sock)
        self._loop = asyncio.new_event_loop()  # required by the scheduler's signature; WSGI never runs it
        self._scheduler = _new_cbscheduler(self._loop, _runner(respond), impl_asyncio=False)
        head, tail = _worker_arguments(sock, self._uds, python_threads, backpressure)
        self._worker = _WSGIWorker(*head, *tail)

    def start(self) -> None:
        """Start accepting; returns at once, the work happens on granian's threads."""
        serve = self._worker.serve_mtr_uds if self._uds else self._worker.serve_mtr
        serve(self._scheduler, self._loop, self.shutdown_signal)


class GranianAsyncFront(_Front):
    """One granian HTTP/1.1 worker answering on an asyncio event loop (granian's RSGI interface) with
    `respond`: for apps whose requests wait together (batching), where a thread per waiting request would
    cost a thread hand-off per request. Bodies over `max_body_size` are not read: the app answers 413."""

    def __init__(
        self, respond: AsyncResponder, sock: socket.socket, *, max_body_size: int, backpressure: int = 512
    ) -> None:
        super().__init__(sock)
        self._loop = _new_loop()
        handler = _future_watcher_wrapper(_rsgi_handler(respond, max_body_size))
        self._scheduler = _new_cbscheduler(self._loop, handler, impl_asyncio=True)
        head, tail = _worker_arguments(sock, self._uds, 1, backpressure)  # one Python thread: the loop's
        self._worker = _RSGIWorker(*head, False, *tail)  # False: no websockets

    def start(self) -> None:
        """Start accepting; the loop runs on a thread of its own."""
        threading.Thread(target=self._serve, name="scorehost-loop", daemon=True).start()

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        serve = self._worker.serve_mtr_uds if self._uds else self._worker.serve_mtr
        serve(self._scheduler, self._loop, self.shutdown_signal)
        self._loop.run_forever()


def _worker_arguments(
    sock: socket.socket, uds: bool, python_threads: int, backpressure: int
) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
    """The arguments granian's WSGI and RSGI workers share, before and after the RSGI one's websockets flag."""
    head: tuple[Any, ...] = (
        1,  # worker id, for granian's own logs
        (None, SocketHolder(sock.fileno(), uds, LISTEN_BACKLOG)),
        None,  # no IPC: granian's metrics are off
        1,  # Rust runtime threads
        512,  # Rust blocking threads
        python_threads,
        30,  # seconds before an idle Python thread is retired
        backpressure,  # requests admitted at once; the rest wait in the socket
        "1",  # HTTP/1.1
        HTTP1Settings(),
        None,  # no HTTP/2
    )
    tail: tuple[Any, ...] = (
        None,  # no static files
        False,  # no TLS: terminate it in a proxy
        None,
        None,
        None,
        "1.3",
        None,
        [],
        False,
        (None, None),  # no metrics
    )
    return head, tail


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:  # no uvloop on this platform
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def _rsgi_handler(respond: AsyncResponder, max_body_size: int) -> Callable[[Any, Any], Awaitable[None]]:
    async def handle(scope: Any, proto: Any) -> None:
        environ = _environ(scope)
        length = environ.get("CONTENT_LENGTH", "")
        if not (length.isdigit() and int(length) > max_body_size):  # else refused from its length, unread
            body = bytearray()
            async for chunk in proto:
                body += chunk
                if len(body) > max_body_size:  # one byte over is enough for the app to answer 413
                    break
            environ["wsgi.input"] = io.BytesIO(body)
            if not length:
                environ["CONTENT_LENGTH"] = str(len(body))
        try:
            status, headers, out = await respond(environ)
        except Exception:
            logger.exception("unexpected error while answering %s %s", scope.method, scope.path)
            proto.response_bytes(500, [("content-type", "application/json")], _INTERNAL_ERROR)
            return
        if isinstance(out, bytes):
            proto.response_bytes(status, headers, out)
            return
        transport = proto.response_stream(status, headers)  # a raw script's streamed answer
        try:
            for chunk in out:
                await transport.send_bytes(chunk)
        finally:
            close = getattr(out, "close", None)
            if close is not None:
                close()

    return handle


def _environ(scope: Any) -> dict[str, Any]:
    """The WSGI environ the app reads, from an RSGI scope (the body comes separately)."""
    host, _, port = str(scope.server).rpartition(":")
    environ: dict[str, Any] = {
        "REQUEST_METHOD": scope.method,
        "SCRIPT_NAME": "",
        "PATH_INFO": scope.path,
        "QUERY_STRING": scope.query_string,
        "SERVER_NAME": host or "localhost",
        "SERVER_PORT": port or "80",
        "SERVER_PROTOCOL": f"HTTP/{scope.http_version}",
        "REMOTE_ADDR": str(scope.client).rpartition(":")[0],
        "wsgi.url_scheme": scope.scheme,
        "wsgi.input": io.BytesIO(),
        "wsgi.errors": io.StringIO(),
        "wsgi.version": (1, 0),
        "wsgi.multithread": False,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }
    for name, value in scope.headers.items():
        key = name.upper().replace("-", "_")
        if key not in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            key = "HTTP_" + key
        environ[key] = f"{environ[key]},{value}" if key in environ else value
    return environ


class _Chunks:
    """The iterator shape granian's response_iter() takes: `__next__` as an attribute, and `close()`."""

    __slots__ = ("__next__", "_body")

    def __init__(self, body: Iterator[bytes]) -> None:
        self._body = body
        self.__next__ = body.__next__

    def close(self) -> None:
        close = getattr(self._body, "close", None)
        if close is not None:
            close()


def _runner(respond: Responder) -> Callable[[Any, dict[str, Any]], int]:
    # granian's own runner copies os.environ into every request's environ; the app needs only the request.
    def run(proto: Any, environ: dict[str, Any]) -> int:
        try:
            status, headers, body = respond(environ)
        except Exception:
            logger.exception(
                "unexpected error while answering %s %s", environ.get("REQUEST_METHOD"), environ.get("PATH_INFO")
            )
            proto.response_bytes(500, [("content-type", "application/json")], _INTERNAL_ERROR)
            return 500
        if isinstance(body, bytes):
            proto.response_bytes(status, headers, body)
        else:  # a streamed body: granian pulls the chunks as the client takes them
            proto.response_iter(status, headers, _Chunks(body))
        return status

    return run
