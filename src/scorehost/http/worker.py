"""One worker process: granian serves HTTP on the slot's socket; `run()` executes on the request's thread."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

import orjson

from scorehost.config import ServeSettings
from scorehost.errors import ScriptLoadError
from scorehost.host.batch import declared_batch_size
from scorehost.host.entry import EntryScript, RunMode
from scorehost.http.factory import run_gate_for, scoring_app_for
from scorehost.http.granian_front import GranianFront, LaterResponder, Responder
from scorehost.http.lifeline import Lifeline
from scorehost.http.recycle import RequestBudget
from scorehost.http.startup import load_and_init, within_init_timeout
from scorehost.telemetry.logs import AccessLog

__all__ = ["EXIT_BOOT_FAILED", "EXIT_SETUP_FAILED", "EXIT_STUCK", "run_worker"]

EXIT_BOOT_FAILED = 3  # the reference's code for "worker failed to boot"
EXIT_STUCK = 75  # EX_TEMPFAIL: replace me, a run() never returned
EXIT_SETUP_FAILED = 78  # EX_CONFIG: the worker could not set itself up from the settings
_STUCK_DRAIN = 2.0  # seconds a stuck worker gives its other requests before it exits

logger = logging.getLogger("scorehost.worker")


def run_worker(
    settings: ServeSettings, sock: socket.socket, script: EntryScript | None, status_fd: int, lifeline: Lifeline
) -> NoReturn:
    """Serve until told to stop; never returns. `script` is the preloaded host, or None to load it here."""
    code = 1
    worker = None
    try:
        try:
            worker = _Worker(settings, sock, script, status_fd, lifeline)
        except Exception as error:
            # Every worker would fail the same way, every time: the supervisor must hear it, not restart it.
            logger.exception("worker set-up failed")
            _report(status_fd, "setup_failed", message=f"{type(error).__name__}: {error}")
            code = EXIT_SETUP_FAILED
        else:
            code = worker.serve()
    except BaseException:
        logger.exception("worker crashed")
    finally:
        if worker is not None:
            worker.app.close()
        sys.stdout.flush()
        sys.stderr.flush()
    # os._exit: a run() thread that never returned must not keep the process alive.
    os._exit(code)


class _Worker:
    def __init__(
        self,
        settings: ServeSettings,
        sock: socket.socket,
        script: EntryScript | None,
        status_fd: int,
        lifeline: Lifeline,
    ) -> None:
        self.settings = settings
        self.status_fd = status_fd
        self.lifeline = lifeline
        self.exit_code = 0
        self.gate = run_gate_for(settings, self._on_stuck)
        self.app = scoring_app_for(settings, self.gate, AccessLog(settings.log_format))
        self.preloaded = script
        # Spare threads take requests while run() is busy: they answer liveness and readiness, and hold
        # waiting /score requests under their deadline. Each costs fast models throughput in GIL hand-offs
        # (docs/serving.md), so there are none unless asked for.
        python_threads = settings.threads + settings.spare_threads
        respond: Responder = self.app.respond
        respond_later: LaterResponder = self.app.respond_later
        if settings.max_requests:  # counted only when asked for: a call more per request
            budget = RequestBudget(settings.max_requests, settings.max_requests_jitter, self._recycle_due)
            respond, respond_later = budget.counting(respond), budget.counting_later(respond_later)
        header_timeout = settings.header_timeout
        if batches(settings, script):  # answers may come from the thread that runs a batch (http/batching/threads.py)
            self.front = GranianFront(
                None, sock, python_threads=python_threads, respond_later=respond_later, header_timeout=header_timeout
            )
        else:
            self.front = GranianFront(respond, sock, python_threads=python_threads, header_timeout=header_timeout)

    def serve(self) -> int:
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._stop_signal)
        self.lifeline.start_heartbeat(self._orphaned)
        if self.preloaded is None:
            # Every run() slot is taken before the first request can arrive, so requests wait behind loading;
            # liveness and readiness answer meanwhile. init() runs on the main thread, as with --preload.
            self.gate.acquire_all()
            self.front.start()
            self._boot(lambda: load_and_init(self.settings))
        else:
            preloaded = self.preloaded

            def per_worker() -> EntryScript:  # init() ran before the fork; this worker's own step runs here
                within_init_timeout(self.settings, preloaded.init_worker)
                return preloaded

            self._boot(per_worker)
            if self.exit_code:
                return self.exit_code
            self.front.start()
        while not self.front.wait(timeout=1.0):
            pass
        return self.exit_code

    def _boot(self, load: Callable[[], EntryScript]) -> None:
        """Load the script (or take the preloaded one) and serve it; its API documents are made here too, so a
        user's unreadable swagger*.json fails start-up like any other script error."""
        try:
            script = load()
            self.app.attach(script)
            if self.app.metrics is not None and script.init_seconds is not None:
                self.app.metrics.init_time.set(script.init_seconds)
        except ScriptLoadError as error:
            self.exit_code = EXIT_BOOT_FAILED
            self._report("boot_failed", message=str(error))
            self.front.stop()
        else:
            # How run() is called, logged once by the supervisor: for a plain run(), the rule that gives its input.
            mode = script.run_input.describe() if script.mode is RunMode.PLAIN else script.mode.describe(script)
            if self.app.batching is not None:
                mode += f"; batching: {self.app.batching.describe()} (--max-batch-size 0 turns it off)"
            self._report("ready", mode=mode)
        finally:
            if self.preloaded is None:
                self.gate.release_all()

    def _stop_signal(self, signum: int, _frame: object) -> None:
        if self.app.script is None and self.preloaded is None:
            # init() holds the main thread and no request is answered before it returns: there is nothing to
            # finish, so stop now rather than after the whole --graceful-timeout.
            logger.info("%s during init(): this worker (pid %d) stops", signal.Signals(signum).name, os.getpid())
            sys.stderr.flush()
            os._exit(0)
        self.front.stop()

    def _on_stuck(self, reason: str) -> None:
        logger.error("%s; this worker (pid %d) stops taking requests and will be replaced", reason, os.getpid())
        self.exit_code = EXIT_STUCK
        self._report("stuck", reason=reason)
        self.front.stop()
        # The stuck thread never finishes, so the drain never completes: leave once the others are answered.
        time.sleep(_STUCK_DRAIN)
        self.app.close()
        sys.stderr.flush()
        os._exit(EXIT_STUCK)

    def _recycle_due(self, requests: int) -> None:
        # The supervisor sends SIGTERM when no other worker is being replaced; until then this one keeps serving.
        self._report("recycle", requests=str(requests))

    def _orphaned(self) -> None:
        logger.warning(
            "the supervisor (pid %d) is gone: this worker (pid %d) finishes its in-flight requests and exits",
            self.lifeline.supervisor,
            os.getpid(),
        )
        self.front.stop()
        # A drain that never ends (a stuck run()) must not keep an unsupervised worker serving.
        timer = threading.Timer(self.settings.graceful_timeout + 1, os._exit, args=(1,))
        timer.daemon = True
        timer.start()

    def _report(self, event: str, **fields: str) -> None:
        _report(self.status_fd, event, **fields)


def _report(status_fd: int, event: str, **fields: str) -> None:
    """Tell the supervisor something, as one JSON line on this worker's status pipe."""
    with contextlib.suppress(OSError):  # the supervisor is gone: nothing to tell
        os.write(status_fd, orjson.dumps({"event": event, **fields}) + b"\n")


def batches(settings: ServeSettings, script: EntryScript | None) -> bool:
    """Whether this worker batches: its script defines run_batch() and --max-batch-size is not 0. Known before
    the script is imported (from its source), since the front that serves it is chosen first."""
    if settings.max_batch_size == 0 or settings.entry_script is None:
        return False
    if script is not None:  # preloaded
        return script.batch is not None
    return declared_batch_size(Path(settings.entry_script)) is not None
