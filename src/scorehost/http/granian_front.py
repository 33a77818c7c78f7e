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
import resource
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from granian import _futures, _granian
from granian.http import HTTP1Settings

from scorehost.http.body_watch import PROTOCOL_KEY
from scorehost.system import raise_descriptor_limit

__all__ = ["GranianFront", "LaterResponder", "Responder"]

Answer = tuple[int, list[tuple[str, str]], bytes | Iterator[bytes]]
# The WSGI environ in, the whole answer out (status, headers, body): no start_response, no iterable.
Responder = Callable[[dict[str, Any]], Answer]
# The WSGI environ and a `send(answer)` that any thread may call, once, even after the responder returned.
# The environ's "scorehost.backlogged" says whether the request was waiting for a thread (the worker is busy).
LaterResponder = Callable[[dict[str, Any], Callable[[Answer], None]], None]
logger = logging.getLogger("scorehost.worker")

# The stubs granian ships lag behind its extension's real signatures (they lack the IPC argument).
_WSGIWorker: Any = _granian.WSGIWorker
SocketHolder: Any = _granian.SocketHolder
_new_cbscheduler: Any = _futures._new_cbscheduler
WorkerSignal: Any = _granian.WorkerSignal

# granian listen()s again on the socket it is given: the same backlog as sockets.py binds with, not smaller.
LISTEN_BACKLOG = 2048
# granian holds a permit per open connection and accepts no more once they are taken: its default (512) let 520
# clients that trickle headers lock everyone else out until the header timeout. Connections cost Rust little
# memory, so the cap is what the descriptor limit allows, keeping some descriptors for the script.
MAX_CONNECTIONS = 65536
_SPARE_DESCRIPTORS = 256
# A request that reaches a Python thread sooner than this after the thread's last one was waiting for it: the
# worker has a backlog. Measured here: 2-10 µs when waiting, 60 µs and more from a client's next request.
BACKLOG_GAP_S = 20e-6
_INTERNAL_ERROR = b'{"message":"An internal error occurred in scorehost; the log has the traceback."}'


class GranianFront:
    """One granian HTTP/1.1 worker answering on `sock`, on `python_threads` Python threads: with `respond`, on
    the request's thread; with `respond_later`, from whichever thread calls its `send` (adaptive batching,
    where the thread running a batch answers every request in it)."""

    def __init__(
        self,
        respond: Responder | None,
        sock: socket.socket,
        *,
        python_threads: int,
        respond_later: LaterResponder | None = None,
        header_timeout: float = 10.0,
        max_connections: int | None = None,
    ) -> None:
        self.shutdown_signal = WorkerSignal()
        self._stopped = threading.Event()
        self.shutdown_signal.add_cb(self._stopped.set)
        uds = sock.family == socket.AF_UNIX
        if respond_later is not None:
            runner = _later_runner(respond_later)
        elif respond is not None:
            runner = _runner(respond)
        else:
            raise ValueError("GranianFront needs respond or respond_later")
        self._loop = asyncio.new_event_loop()  # required by the scheduler's signature; WSGI never runs it
        self._scheduler = _new_cbscheduler(self._loop, runner, impl_asyncio=False)
        connections = max_connections or connection_limit()
        self._worker = _WSGIWorker(*_worker_arguments(sock, uds, python_threads, connections, header_timeout))
        self._serve = self._worker.serve_mtr_uds if uds else self._worker.serve_mtr

    def start(self) -> None:
        """Start accepting; returns at once, the work happens on granian's threads."""
        self._serve(self._scheduler, self._loop, self.shutdown_signal)

    def stop(self) -> None:
        """Stop accepting and let in-flight requests finish."""
        self.shutdown_signal.set()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until the worker has stopped and drained; False if `timeout` passed first."""
        return self._stopped.wait(timeout)


def connection_limit() -> int:
    """How many connections a worker holds open at once: what the descriptor limit allows, raised to its hard
    limit first (a common soft limit of 1024 would otherwise cap it)."""
    limit = raise_descriptor_limit()
    if limit == resource.RLIM_INFINITY:
        return MAX_CONNECTIONS
    return max(64, min(MAX_CONNECTIONS, limit - _SPARE_DESCRIPTORS))


def _worker_arguments(
    sock: socket.socket, uds: bool, python_threads: int, connections: int, header_timeout: float
) -> tuple[Any, ...]:
    """The arguments of granian's WSGI worker."""
    return (
        1,  # worker id, for granian's own logs
        (None, SocketHolder(sock.fileno(), uds, LISTEN_BACKLOG)),
        None,  # no IPC: granian's metrics are off
        1,  # Rust runtime threads
        512,  # Rust blocking threads
        python_threads,
        30,  # seconds before an idle Python thread is retired
        connections,  # connections open at once; the rest wait in the socket's backlog
        "1",  # HTTP/1.1
        # hyper's header timeout runs from the end of the previous request: it bounds idle keep-alive too.
        HTTP1Settings(header_read_timeout=max(1, round(header_timeout * 1000))),
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
        environ[PROTOCOL_KEY] = proto  # the body watch answers a stalled read's request on it
        try:
            answer = respond(environ)
        except Exception:
            return _failed(proto, environ)
        _send(proto, answer)
        return answer[0]

    return run


def _later_runner(respond: LaterResponder) -> Callable[[Any, dict[str, Any]], int]:
    # granian waits for the answer on the protocol, not for this function: it may return before `send` is
    # called, and the protocol (kept alive by `send`) takes the answer from any thread.
    left = [0.0]  # when the last request's call returned

    def run(proto: Any, environ: dict[str, Any]) -> int:
        own = threading.get_ident()
        environ[PROTOCOL_KEY] = proto
        environ["scorehost.backlogged"] = time.perf_counter() - left[0] < BACKLOG_GAP_S

        def send(answer: Answer) -> None:
            if isinstance(answer[2], bytes) or threading.get_ident() == own:
                _send(proto, answer)
            else:  # granian pulls a stream on the sending thread: not on one that answers a whole batch
                threading.Thread(target=_send, args=(proto, answer), name="scorehost-stream", daemon=True).start()

        try:
            respond(environ, send)
        except Exception:
            return _failed(proto, environ)  # granian drops it if an answer was sent already
        finally:
            left[0] = time.perf_counter()
        return 0

    return run


def _send(proto: Any, answer: Answer) -> None:
    status, headers, body = answer
    if isinstance(body, bytes):
        proto.response_bytes(status, headers, body)
    else:  # a streamed body: granian pulls the chunks as the client takes them
        proto.response_iter(status, headers, _Chunks(body))


def _failed(proto: Any, environ: dict[str, Any]) -> int:
    logger.exception("unexpected error while answering %s %s", environ.get("REQUEST_METHOD"), environ.get("PATH_INFO"))
    proto.response_bytes(500, [("content-type", "application/json")], _INTERNAL_ERROR)
    return 500
