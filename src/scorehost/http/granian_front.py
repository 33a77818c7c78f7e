"""Serve an app on a socket we own, with granian's Rust HTTP worker inside this process.

Granian parses HTTP and moves bytes on Rust threads, without the GIL; Python threads only run the
app. Its own process manager cannot do what the supervisor does (fork after `--preload`, keep a dead
worker's socket and queued connections, report why a worker died), so we drive one granian worker
per process ourselves. That needs granian's internal worker API, which is why `pyproject.toml` pins
granian to one minor release: everything that touches it is in this module.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

from granian import _futures, _granian
from granian.http import HTTP1Settings

__all__ = ["GranianFront"]

# The WSGI environ in, the whole answer out (status, headers, body): no start_response, no iterable.
Responder = Callable[[dict[str, Any]], tuple[int, list[tuple[str, str]], bytes | Iterator[bytes]]]
logger = logging.getLogger("scorehost.worker")

# The stubs granian ships lag behind its extension's real signatures (they lack the IPC argument).
_WSGIWorker: Any = _granian.WSGIWorker
SocketHolder: Any = _granian.SocketHolder
_new_cbscheduler: Any = _futures._new_cbscheduler
WorkerSignal: Any = _granian.WorkerSignal

# granian listen()s again on the socket it is given: the same backlog as sockets.py binds with, not smaller.
LISTEN_BACKLOG = 2048
_INTERNAL_ERROR = b'{"message":"An internal error occurred in scorehost; the log has the traceback."}'


class GranianFront:
    """One granian HTTP/1.1 worker answering with `respond` on `sock`, on `python_threads` Python threads."""

    def __init__(
        self, respond: Responder, sock: socket.socket, *, python_threads: int, backpressure: int = 512
    ) -> None:
        self.shutdown_signal = WorkerSignal()
        self._stopped = threading.Event()
        self.shutdown_signal.add_cb(self._stopped.set)
        self._sock = sock
        self._uds = sock.family == socket.AF_UNIX
        self._loop = asyncio.new_event_loop()  # required by the scheduler's signature; WSGI never runs it
        self._scheduler = _new_cbscheduler(self._loop, _runner(respond), impl_asyncio=False)
        self._worker = _WSGIWorker(
            1,  # worker id, for granian's own logs
            (None, SocketHolder(sock.fileno(), self._uds, LISTEN_BACKLOG)),
            None,  # no IPC: granian's metrics are off
            1,  # Rust runtime threads
            512,  # Rust blocking threads
            python_threads,
            30,  # seconds before an idle Python thread is retired
            backpressure,  # requests admitted at once; the rest wait in the socket
            "1",  # HTTP/1.1
            HTTP1Settings(),
            None,  # no HTTP/2
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

    def start(self) -> None:
        """Start accepting; returns at once, the work happens on granian's threads."""
        serve = self._worker.serve_mtr_uds if self._uds else self._worker.serve_mtr
        serve(self._scheduler, self._loop, self.shutdown_signal)

    def stop(self) -> None:
        """Stop accepting and let in-flight requests finish."""
        self.shutdown_signal.set()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until the worker has stopped and drained; False if `timeout` passed first."""
        return self._stopped.wait(timeout)


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
