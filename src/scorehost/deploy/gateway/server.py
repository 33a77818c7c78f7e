"""Run the gateway: N worker processes, each an event loop (uvloop when installed) on its own SO_REUSEPORT
socket, each reading the routing table from the workspace. The gateway keeps no state of its own, so the
parent only restarts workers that die and passes SIGTERM on; workers exit when the parent dies.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Callable, Coroutine
from typing import Any

from scorehost.deploy.gateway.app import GatewayApp
from scorehost.deploy.gateway.metrics import GatewayMetrics
from scorehost.deploy.gateway.protocol import GatewayProtocol
from scorehost.deploy.gateway.routes import RouteFile, routes_path
from scorehost.deploy.gateway.worker import Limits, Worker
from scorehost.sockets import bind_sockets
from scorehost.system import die_with_parent, raise_descriptor_limit
from scorehost.telemetry.prometheus import prepare_multiprocess, remove_multiprocess
from scorehost.telemetry.spans import SpanExporter, require_otel

__all__ = ["serve_gateway"]

logger = logging.getLogger("scorehost.gateway")
_DRAIN_S = 5.0  # seconds in-flight requests get after SIGTERM
_SPARE_DESCRIPTORS = 256  # beside client connections: those to instances (mostly idle, pooled), files
SERVICE_NAME = "scorehost-gateway"  # the gateway's spans' service.name


def serve_gateway(
    home: str | os.PathLike[str],
    host: str = "127.0.0.1",
    port: int = 8080,
    workers: int = 1,
    *,
    timeout: float = 60.0,
    limits: Limits | None = None,
    otlp_endpoint: str | None = None,
    on_ready: Callable[[int], None] | None = None,
) -> None:
    """Serve the endpoints of workspace `home` on host:port until SIGINT/SIGTERM; `on_ready(port)` is called
    once the sockets listen (port 0 picks a free port). `limits`: what a client may hold (the defaults of
    `Limits`). With `otlp_endpoint` (an OTLP/HTTP traces URL), each forwarded request's span goes there."""
    limits = limits or Limits()
    if otlp_endpoint:
        require_otel()  # here, not in each worker: a worker failing on it would be restarted again and again
    descriptors = raise_descriptor_limit()  # before the fork: the workers inherit it
    needed = limits.max_connections + _SPARE_DESCRIPTORS
    if descriptors < needed:
        logger.warning(
            "the descriptor limit (%d) is below what --max-connections %d needs (%d per worker): past it, "
            "connections fail at accept(); raise the limit (ulimit -n, LimitNOFILE=) or lower --max-connections",
            descriptors,
            limits.max_connections,
            needed,
        )
    sockets = bind_sockets(host, port, workers)
    metrics_folder = prepare_multiprocess() if workers > 1 else None  # workers' counts, summed at /metrics
    bound = sockets[0].getsockname()[1]
    where = f"[{host}]" if ":" in host else host
    logger.info(
        "gateway listening on http://%s:%d (%d worker(s)), routes from %s", where, bound, workers, routes_path(home)
    )
    if on_ready is not None:
        on_ready(bound)

    def run(sock: socket.socket, parent: int | None = None) -> None:
        _run_worker(sock, routes_path(home), timeout, limits, otlp_endpoint, parent)

    if workers == 1:
        run(sockets[0])
        return
    try:
        _supervise(sockets, run)
    finally:
        if metrics_folder is not None:
            remove_multiprocess(metrics_folder)


def _run_worker(
    sock: socket.socket,
    routes: os.PathLike[str],
    timeout: float,
    limits: Limits,
    otlp_endpoint: str | None,
    parent: int | None,
) -> None:
    # Made in the worker, after the fork: the exporter's thread would not survive it.
    spans = SpanExporter(otlp_endpoint, SERVICE_NAME) if otlp_endpoint else None
    app = GatewayApp(RouteFile(routes), timeout=timeout, metrics=GatewayMetrics(), spans=spans)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        worker = Worker(limits, upstream_timeout=timeout, parent=parent, on_orphaned=stop.set)
        worker.start()
        server = await loop.create_server(lambda: GatewayProtocol(app, worker), sock=sock, backlog=2048)
        await stop.wait()
        worker.stop()
        server.close()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(server.wait_closed(), _DRAIN_S)
        app.close()

    try:
        _event_loop_runner()(main())
    finally:
        if spans is not None:
            spans.close()  # sends what is pending


def _event_loop_runner() -> Callable[[Coroutine[Any, Any, None]], None]:
    try:
        import uvloop  # optional: 2-3x cheaper per request than asyncio's own loop
    except ImportError:
        return asyncio.run
    return uvloop.run


def _supervise(sockets: list[socket.socket], run: Callable[[socket.socket, int], None]) -> None:
    children: dict[int, socket.socket] = {}
    stopping = False

    def stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    parent = os.getpid()

    def spawn(sock: socket.socket) -> None:
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                for signum in (signal.SIGTERM, signal.SIGINT):  # not the parent's handler: it signals workers
                    signal.signal(signum, signal.SIG_DFL)
                die_with_parent(parent)
                run(sock, parent)
            except BaseException:
                logger.exception("gateway worker crashed")
                code = 1
            finally:
                sys.stderr.flush()
                os._exit(code)
        children[pid] = sock

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for sock in sockets:
        spawn(sock)
    while children:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            break
        except InterruptedError:
            continue
        lost = children.pop(pid, None)
        if lost is not None and not stopping:
            logger.error("gateway worker %d exited (%s); restarting it", pid, os.waitstatus_to_exitcode(status))
            time.sleep(0.2)
            spawn(lost)
