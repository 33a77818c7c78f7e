"""The supervisor: forks the workers, restarts the ones that die (saying why), and stops them gracefully.

It runs no event loop and no threads, so forking from it is safe, and it never imports the entry
script unless `--preload` asked it to. Once a second it also looks at each ready worker from outside: a
heartbeat that stands still (SIGSTOP, C code holding the GIL) gets it killed and replaced, resident memory
past `--max-memory-per-worker` gets it replaced gracefully, and a worker that has served `--max-requests`
is recycled, one worker at a time. New connections go only to ready workers (http/steering.py).
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import selectors
import signal
import socket
import time
from dataclasses import dataclass

import orjson

from scorehost.config import ServeSettings
from scorehost.host.entry import EntryScript
from scorehost.http.lifeline import HeartbeatBoard, Lifeline
from scorehost.http.metrics import ServerMetrics
from scorehost.http.procfs import oom_kills, process_state, resident_bytes
from scorehost.http.steering import Steering
from scorehost.http.worker import EXIT_BOOT_FAILED, EXIT_SETUP_FAILED, EXIT_STUCK, run_worker
from scorehost.telemetry.prometheus import mark_worker_dead

__all__ = ["Supervisor"]

logger = logging.getLogger("scorehost.supervisor")

_MIB = 1024 * 1024
# Between steering new connections away from a worker and stopping it: time to read the requests of the
# connections it accepted just before (its HTTP server would close those on stopping).
_QUIET_S = 0.5


@dataclass
class _Slot:
    index: int
    sock: socket.socket
    pid: int = 0
    status: int = -1  # read end of the worker's status pipe
    started: float = 0.0
    ready: bool = False
    buffer: bytes = b""
    restart_at: float = 0.0
    quick_deaths: int = 0
    stuck_reason: str = ""
    boot_error: str = ""
    setup_error: str = ""
    oom_kills_at_start: int = 0
    beats: int = 0  # the heartbeat counter when it last changed, and when that was
    beat_at: float = 0.0
    silenced: str = ""  # why it was killed for want of a heartbeat
    retiring: str = ""  # "memory" or "recycle": stopped gracefully, to be replaced
    stop_at: float = 0.0  # when to send it SIGTERM (0: sent)
    retire_by: float = 0.0
    retire_note: str = ""
    recycle_due: bool = False


class Supervisor:
    """Keeps one worker process per socket alive until SIGTERM or SIGINT."""

    def __init__(self, settings: ServeSettings, sockets: list[socket.socket], script: EntryScript | None) -> None:
        self.settings = settings
        self.script = script
        self.slots = [_Slot(index=i + 1, sock=sock) for i, sock in enumerate(sockets)]
        self.selector = selectors.DefaultSelector()
        self.stopping = False
        self.exit_code = 0
        self.announced = False
        self.ever_ready = False
        self.board = HeartbeatBoard(len(self.slots))  # before any fork: the workers share its pages
        self.steering = Steering(sockets)
        self.sampled_at = 0.0
        # Made after the workers' metrics folder is set up (serve()), before any worker forks.
        self.metrics = ServerMetrics() if settings.metrics else None
        if self.metrics is not None and script is not None and script.init_seconds is not None:
            self.metrics.init_time.set(script.init_seconds)  # --preload: init() ran here, once

    def run(self) -> int:
        """Supervise until asked to stop; return the process exit code."""
        wake_read, wake_write = os.pipe()
        os.set_blocking(wake_read, False)
        os.set_blocking(wake_write, False)
        self.selector.register(wake_read, selectors.EVENT_READ, None)
        signal.set_wakeup_fd(wake_write, warn_on_full_buffer=False)
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._request_stop)
        signal.signal(signal.SIGCHLD, lambda *_: None)  # only to wake the select below
        try:
            # Everything imported so far outlives the workers: frozen, their collections never walk it, so
            # they neither spend start-up time on it nor copy its pages (~0.07 s less per cold start here).
            gc.freeze()
            for slot in self.slots:
                self._spawn(slot)
            while not self.stopping:
                for key, _ in self.selector.select(timeout=1.0):
                    if key.data is None:
                        _drain(wake_read)
                    else:
                        self._read_status(key.data)
                self._reap()
                self._restart_due()
                self._enforce_init_timeout()
                self._watch_workers()
                self._steer()
        finally:
            self._stop_all()
            signal.set_wakeup_fd(-1)
        return self.exit_code

    def _request_stop(self, signum: int, _frame: object) -> None:
        if not self.stopping:
            logger.info("%s received: finishing in-flight requests, then stopping", signal.Signals(signum).name)
        self.stopping = True

    def _spawn(self, slot: _Slot) -> None:
        read_end, write_end = os.pipe()
        oom_before = oom_kills()
        lifeline = Lifeline(self.board, slot.index - 1, os.getpid())
        pid = os.fork()
        if pid == 0:  # the worker
            lifeline.tie()
            os.close(read_end)
            signal.set_wakeup_fd(-1)
            for signum in (signal.SIGTERM, signal.SIGINT):
                signal.signal(signum, signal.SIG_DFL)
            for other in self.slots:
                if other.sock is not slot.sock:  # a Unix socket is every slot's
                    other.sock.close()
                if other.status >= 0:
                    os.close(other.status)
            run_worker(self.settings, slot.sock, self.script, write_end, lifeline)
        os.close(write_end)
        os.set_blocking(read_end, False)
        slot.pid, slot.status, slot.started = pid, read_end, time.monotonic()
        slot.ready, slot.buffer, slot.oom_kills_at_start = False, b"", oom_before
        slot.silenced = slot.retiring = slot.retire_note = slot.stuck_reason = slot.setup_error = ""
        slot.recycle_due = False
        self.selector.register(read_end, selectors.EVENT_READ, slot)
        logger.debug("worker %d started (pid %d)", slot.index, pid)

    def _read_status(self, slot: _Slot) -> None:
        try:
            chunk = os.read(slot.status, 65536)
        except BlockingIOError:
            return
        if not chunk:
            self._close_status(slot)
            return
        slot.buffer += chunk
        *lines, slot.buffer = slot.buffer.split(b"\n")
        for line in lines:
            self._on_event(slot, orjson.loads(line))

    def _on_event(self, slot: _Slot, event: dict[str, str]) -> None:
        kind = event.get("event")
        if kind == "ready":
            slot.ready, slot.quick_deaths = True, 0
            slot.beats, slot.beat_at = self.board.read(slot.index - 1), time.monotonic()
            self.ever_ready = True
            logger.debug("worker %d ready (pid %d)", slot.index, slot.pid)
            if not self.announced and all(s.ready for s in self.slots):
                self.announced = True
                if event.get("mode"):
                    logger.info("%s", event["mode"])
                logger.info("ready: %d worker(s) serving", len(self.slots))
        elif kind == "boot_failed":
            slot.boot_error = event.get("message", "")
        elif kind == "stuck":
            slot.stuck_reason = event.get("reason", "")
        elif kind == "setup_failed":
            slot.setup_error = event.get("message", "")
        elif kind == "recycle":
            slot.recycle_due = True
            slot.retire_note = f"recycled after {event.get('requests', '?')} requests (--max-requests)"

    def _close_status(self, slot: _Slot) -> None:
        if slot.status >= 0:
            self.selector.unregister(slot.status)
            os.close(slot.status)
            slot.status = -1

    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            slot = next((s for s in self.slots if s.pid == pid), None)
            if slot is not None:
                self._on_exit(slot, status)

    def _on_exit(self, slot: _Slot, status: int) -> None:
        if slot.status >= 0:
            self._read_status(slot)  # a last message may be waiting: why it failed to boot, or got stuck
        self._close_status(slot)
        pid, slot.pid = slot.pid, 0
        if self.stopping:
            return
        lived = time.monotonic() - slot.started
        code = os.waitstatus_to_exitcode(status)
        if code == EXIT_BOOT_FAILED or slot.boot_error:
            # Every worker would fail the same way: report it once and stop, as the reference does.
            logger.error("The entry script cannot be served.\n%s", slot.boot_error or f"worker exited with {code}")
            self.exit_code, self.stopping = EXIT_BOOT_FAILED, True
            return
        if (code == EXIT_SETUP_FAILED or slot.setup_error) and not self.ever_ready:
            # A setting the workers cannot honour: restarting them would fail the same way, forever.
            logger.error("The workers cannot start: %s", slot.setup_error or f"worker exited with {code}")
            self.exit_code, self.stopping = 1, True
            return
        cause, label = self._cause(slot, code)
        if self.metrics is not None:
            mark_worker_dead(pid)
            self.metrics.restarts.labels(label).inc()
        if label == "recycle":  # planned: no delay, and not a death that counts towards the back-off
            slot.restart_at = time.monotonic()
            logger.info("worker %d (pid %d, up %.1f s) %s; starting its replacement", slot.index, pid, lived, cause)
            return
        slot.quick_deaths = slot.quick_deaths + 1 if lived < 10 else 0
        delay = 0.0 if slot.quick_deaths <= 1 else min(0.5 * 2 ** (slot.quick_deaths - 2), 30.0)
        slot.restart_at = time.monotonic() + delay
        again = f" in {delay:.1f} s" if delay else ""
        logger.error("worker %d (pid %d, up %.1f s) %s; restarting it%s", slot.index, pid, lived, cause, again)

    def _cause(self, slot: _Slot, code: int) -> tuple[str, str]:
        """Why the worker is gone, as the log says it, and the restart metric's label."""
        if slot.silenced:
            return slot.silenced, "hung"
        if slot.retiring:
            return slot.retire_note, slot.retiring
        if slot.setup_error:
            return f"failed to set itself up ({slot.setup_error})", "exit"
        if code == EXIT_STUCK:
            return f"was replaced: {slot.stuck_reason or 'a run() call never returned'}", "deadline"
        if code < 0:
            cause = f"was killed by {signal.Signals(-code).name}"
            if -code == signal.SIGKILL and oom_kills() > slot.oom_kills_at_start:
                return (
                    f"{cause}: out of memory (the kernel's out-of-memory killer); give it more memory, or set "
                    "--max-memory-per-worker to replace a worker that grows before the kernel kills it"
                ), "oom"
            return cause, "signal"
        return f"exited unexpectedly with code {code}", "exit"

    def _steer(self) -> None:
        """New connections go to the ready workers that are not being replaced (all, when none is ready)."""
        serving = {i for i, slot in enumerate(self.slots) if slot.pid and slot.ready and not slot.retiring}
        self.steering.serve_only(serving)

    def _watch_workers(self) -> None:
        """Recycling as soon as it is due; once a second: heartbeats, memory and replacements that overran."""
        now = time.monotonic()
        for slot in self.slots:
            if slot.retiring and slot.stop_at and now >= slot.stop_at:
                slot.stop_at, slot.retire_by = 0.0, now + self.settings.graceful_timeout + 5
                _signal(slot.pid, signal.SIGTERM)
        # Recycling waits while any worker is starting or being replaced: never all at once. Checked on every
        # wake-up (a worker's report wakes the loop), not once a second, or a fast worker would serve on far past
        # its --max-requests.
        if all(slot.pid and slot.ready and not slot.retiring for slot in self.slots):
            due = next((slot for slot in self.slots if slot.recycle_due), None)
            if due is not None:
                self._retire(due, "recycle", due.retire_note)
        if now - self.sampled_at < 1.0:
            return
        self.sampled_at = now
        for slot in self.slots:
            if not slot.pid or not slot.ready:
                continue
            if slot.retiring and not slot.stop_at and now > slot.retire_by:
                logger.warning(
                    "worker %d (pid %d) did not finish its requests within --graceful-timeout; killing it",
                    slot.index,
                    slot.pid,
                )
                _signal(slot.pid, signal.SIGKILL)
            self._check_heartbeat(slot, now)
            self._check_memory(slot)

    def _check_heartbeat(self, slot: _Slot, now: float) -> None:
        limit = self.settings.heartbeat_timeout
        beats = self.board.read(slot.index - 1)
        if beats != slot.beats:
            slot.beats, slot.beat_at = beats, now
            return
        silent = now - slot.beat_at
        if not limit or silent <= limit or slot.silenced:
            return
        state = process_state(slot.pid)
        if state is None or state in "ZX":
            return  # it is exiting: reaped next round
        if state == "T":
            why = "was stopped (SIGSTOP/SIGTSTP)"
        elif state == "t":
            why = "was stopped by a debugger (ptrace)"
        else:
            why = "is stuck in code that holds the GIL (a C call that never lets Python run)"
        slot.silenced = f"{why}: no heartbeat for {silent:.1f} s (--heartbeat-timeout {limit:g}); killed"
        _signal(slot.pid, signal.SIGKILL)

    def _check_memory(self, slot: _Slot) -> None:
        limit = self.settings.max_memory_per_worker
        if limit is None or slot.retiring:
            return
        rss = resident_bytes(slot.pid)
        if rss is None or rss <= limit:
            return
        note = (
            f"was replaced: its memory (RSS {rss / _MIB:.0f} MiB) passed --max-memory-per-worker "
            f"({limit / _MIB:.0f} MiB)"
        )
        logger.warning(
            "worker %d (pid %d) uses %.0f MiB, past --max-memory-per-worker (%.0f MiB): it finishes its "
            "in-flight requests and is replaced",
            slot.index,
            slot.pid,
            rss / _MIB,
            limit / _MIB,
        )
        self._retire(slot, "memory", note)

    def _retire(self, slot: _Slot, why: str, note: str) -> None:
        """Stop a worker gracefully (it finishes its in-flight requests) to replace it."""
        slot.retiring, slot.retire_note, slot.recycle_due = why, note, False
        self._steer()  # no new connections for it; SIGTERM once it has read the requests it already has
        slot.stop_at = time.monotonic() + (_QUIET_S if self.steering.active else 0.0)

    def _enforce_init_timeout(self) -> None:
        # The worker's own alarm reports first, with a traceback; this catches an init() blocked in C code.
        limit = self.settings.init_timeout
        for slot in self.slots:
            if slot.pid and not slot.ready and time.monotonic() - slot.started > limit + 5:
                slot.boot_error = (
                    f"init() did not finish within {limit:.0f} s (--init-timeout); "
                    "raise the limit if loading the model really takes that long."
                )
                _signal(slot.pid, signal.SIGKILL)

    def _restart_due(self) -> None:
        now = time.monotonic()
        for slot in self.slots:
            if slot.pid == 0 and not self.stopping and slot.restart_at <= now:
                self._spawn(slot)

    def _stop_all(self) -> None:
        alive = [slot for slot in self.slots if slot.pid]
        for slot in alive:
            _signal(slot.pid, signal.SIGTERM)
            _signal(slot.pid, signal.SIGCONT)  # a stopped worker handles its SIGTERM only once it runs again
        deadline = time.monotonic() + self.settings.graceful_timeout + 5
        while alive and time.monotonic() < deadline:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                time.sleep(0.05)
                continue
            alive = [slot for slot in alive if slot.pid != pid]
        for slot in alive:
            logger.warning("worker %d (pid %d) did not stop in time; killing it", slot.index, slot.pid)
            _signal(slot.pid, signal.SIGKILL)
            os.waitpid(slot.pid, 0)
        for slot in self.slots:
            self._close_status(slot)
            slot.sock.close()


def _signal(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signum)


def _drain(fd: int) -> None:
    try:
        while os.read(fd, 4096):
            pass
    except BlockingIOError:
        pass
