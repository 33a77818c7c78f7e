"""One worker process: an event loop serving HTTP on its slot's socket, `run()` on its own thread(s)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
from collections.abc import Callable, Coroutine
from typing import Any, NoReturn

import orjson
import uvicorn

from scorehost.config import ServeSettings
from scorehost.errors import ScriptLoadError
from scorehost.host.entry import EntryScript, load_entry_script
from scorehost.http.app import ScoringApp
from scorehost.http.runner import RunExecutor
from scorehost.logs import AccessLog

__all__ = ["EXIT_BOOT_FAILED", "EXIT_STUCK", "run_worker"]

EXIT_BOOT_FAILED = 3  # the reference's code for "worker failed to boot"
EXIT_STUCK = 75  # EX_TEMPFAIL: replace me, a run() never returned

logger = logging.getLogger("scorehost.worker")


def run_worker(settings: ServeSettings, sock: socket.socket, script: EntryScript | None, status_fd: int) -> NoReturn:
    """Serve until told to stop; never returns. `script` is the preloaded host, or None to load it here."""
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    code = 1
    try:
        code = _serve(settings, sock, script, status_fd)
    except BaseException:
        logger.exception("worker crashed")
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
    # os._exit: a run() thread that never returned must not keep the process alive.
    os._exit(code)


def _serve(settings: ServeSettings, sock: socket.socket, script: EntryScript | None, status_fd: int) -> int:
    exit_code = 0
    server: uvicorn.Server | None = None

    def on_stuck(reason: str) -> None:
        nonlocal exit_code
        logger.error("%s; this worker (pid %d) stops taking requests and will be replaced", reason, os.getpid())
        exit_code = EXIT_STUCK
        executor.close("The worker was replaced after a run() that never returned; retry the request.")
        _report(status_fd, "stuck", reason=reason)
        if server is not None:
            server.should_exit = True

    grace = max(1.0, min(settings.request_timeout, 10.0))
    executor = RunExecutor(settings.threads, stuck_grace=grace, on_stuck=on_stuck)
    app = ScoringApp(
        executor,
        timeout=settings.request_timeout,
        max_body_size=settings.max_body_size,
        access_log=AccessLog(settings.log_format),
    )
    config = uvicorn.Config(
        app,
        lifespan="off",
        http="httptools",
        access_log=False,
        log_config=None,
        server_header=False,
        timeout_keep_alive=int(max(settings.keep_alive, 1)),
        timeout_graceful_shutdown=int(settings.graceful_timeout) or None,
    )
    server = uvicorn.Server(config)

    async def boot() -> None:
        nonlocal exit_code
        if script is not None:
            app.script = script
        else:
            try:
                # Loading is the first job on the run thread, so requests that arrive meanwhile queue behind it.
                await executor.submit(_load, settings, app, deadline=float("inf"))
            except ScriptLoadError as error:
                _report(status_fd, "boot_failed", message=str(error))
                exit_code = EXIT_BOOT_FAILED
                assert server is not None
                server.should_exit = True
                return
        while not server.started:
            await asyncio.sleep(0.005)
        _report(status_fd, "ready")

    async def main() -> None:
        assert server is not None
        booting = asyncio.ensure_future(boot())
        await server.serve(sockets=[sock])
        booting.cancel()

    _event_loop_runner()(main())
    executor.stop()
    return exit_code


def _load(settings: ServeSettings, app: ScoringApp) -> None:
    assert settings.entry_script is not None
    script = load_entry_script(settings.entry_script, settings.run_input)
    script.init()
    # Set here, on the run thread: the next queued request may run before the event loop resumes boot().
    app.script = script


def _report(status_fd: int, event: str, **fields: str) -> None:
    """Tell the supervisor something, as one JSON line on this worker's status pipe."""
    with contextlib.suppress(OSError):  # the supervisor is gone: nothing to tell
        os.write(status_fd, orjson.dumps({"event": event, **fields}) + b"\n")


def _event_loop_runner() -> Callable[[Coroutine[Any, Any, None]], None]:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is missing only on platforms without it
        return asyncio.run
    return uvloop.run
