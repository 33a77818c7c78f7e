"""The supervisor: forks the workers, restarts the ones that die (saying why), and stops them gracefully.

It runs no event loop and no threads, so forking from it is safe, and it never imports the entry
script unless `--preload` asked it to. Once a second it also looks at each ready worker from outside: a
heartbeat that stands still (SIGSTOP, C code holding the GIL) gets it killed and replaced, resident memory
past `--max-memory-per-worker` gets it replaced gracefully, and a worker that has served `--max-requests`
is recycled, one worker at a time. New connections go only to ready workers (http/steering.py). With `--reload`,
a change to the script's folder starts a new generation of workers beside the serving one (http/reload.py).
Each worker sees only its own GPU(s), set in its environment before it loads anything (devices/placement.py).
"""

from __future__ import annotations

import gc
import logging
import os
import selectors
import signal
import socket
import time
from pathlib import Path

import orjson

from scorehost.config import ServeSettings
from scorehost.devices.placement import Placement
from scorehost.host.entry import EntryScript
from scorehost.http.lifeline import HeartbeatBoard, Lifeline
from scorehost.http.metrics import ServerMetrics
from scorehost.http.procfs import oom_kills
from scorehost.http.reload import LANES_PER_WORKER, Reloader
from scorehost.http.steering import Steering
from scorehost.http.worker import EXIT_BOOT_FAILED, EXIT_SETUP_FAILED, run_worker
from scorehost.http.worker_slot import WorkerSlot as _Slot
from scorehost.http.worker_slot import exit_cause, heartbeat_stands_still, memory_note
from scorehost.http.worker_slot import send_signal as _signal
from scorehost.telemetry.prometheus import mark_worker_dead
from scorehost.telemetry.worker_report import WorkerReport

__all__ = ["Supervisor"]

logger = logging.getLogger("scorehost.supervisor")

# Between steering new connections away from a worker and stopping it: time to read the requests of the
# connections it accepted just before (its HTTP server would close those on stopping).
_QUIET_S = 0.5


class Supervisor:
    """Keeps one worker process per socket alive until SIGTERM or SIGINT."""

    def __init__(
        self,
        settings: ServeSettings,
        sockets: list[socket.socket],
        script: EntryScript | None,
        where: str = "",
        reload: bool = False,
        placement: Placement | None = None,
    ) -> None:
        self.settings = settings
        self.placement = placement or Placement(len(sockets))  # each worker's GPUs
        self.script = script
        self.where = where  # the address, logged once a worker serves
        self.slots = [_Slot(index=i + 1, sock=sock, cell=i) for i, sock in enumerate(sockets)]
        self.selector = selectors.DefaultSelector()
        self.stopping = False
        self.exit_code = 0
        self.announced = False
        self.ever_ready = False
        # Before any fork: the workers share its pages. --reload's generations each need cells of their own.
        self.board = HeartbeatBoard(len(self.slots) * (LANES_PER_WORKER if reload else 1))
        self.report = WorkerReport.from_environ(len(self.slots))  # each worker's state, for a control plane
        self.steering = Steering(sockets)
        self.reloader: Reloader | None = None
        if reload:
            assert settings.entry_script is not None
            self.reloader = Reloader(self, Path(settings.entry_script).parent, len(sockets))
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
                self.spawn(slot)
            while not self.stopping:
                for key, _ in self.selector.select(timeout=0.25 if self.reloader else 1.0):
                    if key.data is None:
                        _drain(wake_read)
                    else:
                        self._read_status(key.data)
                self._reap()
                self._restart_due()
                self._enforce_init_timeout()
                self._watch_workers()
                self.steer()
                if self.reloader is not None:
                    self.reloader.tick(time.monotonic())
        finally:
            self._stop_all()
            if self.reloader is not None:
                self.reloader.close()
            signal.set_wakeup_fd(-1)
        return self.exit_code

    def _request_stop(self, signum: int, _frame: object) -> None:
        if not self.stopping:
            logger.info("%s received: finishing in-flight requests, then stopping", signal.Signals(signum).name)
        self.stopping = True

    def spawn(self, slot: _Slot) -> None:
        """Fork the slot's worker."""
        read_end, write_end = os.pipe()
        oom_before = oom_kills()
        lifeline = Lifeline(self.board, slot.cell, os.getpid())
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
            os.environ.update(self.placement.environment(slot.index))  # before anything could initialize CUDA
            run_worker(self.settings, slot.sock, self.script, write_end, lifeline)
        os.close(write_end)
        os.set_blocking(read_end, False)
        slot.pid, slot.status, slot.started = pid, read_end, time.monotonic()
        slot.ready, slot.buffer, slot.oom_kills_at_start = False, b"", oom_before
        slot.silenced = slot.retiring = slot.retire_note = slot.stuck_reason = slot.setup_error = ""
        slot.recycle_due = False
        self.selector.register(read_end, selectors.EVENT_READ, slot)
        self.report.started(slot.index, pid)
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
            slot.beats, slot.beat_at = self.board.read(slot.cell), time.monotonic()
            self.report.ready(slot.index)
            logger.debug("worker %d ready (pid %d)", slot.index, slot.pid)
            if not self.ever_ready:  # the first worker serves: so does the server, not before
                self.ever_ready = True
                if event.get("mode"):
                    logger.info("input: %s", event["mode"])
                logger.info("listening on %s  (GET / ready, GET /live liveness, POST /score)", self.where)
            if not self.announced and all(s.ready for s in self.slots):
                self.announced = True
                logger.info("ready: %d worker(s) serving", len(self.slots))
            if self.reloader is not None:
                self.reloader.on_ready(slot)
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
        if self.reloader is not None and self.reloader.on_exit(slot, pid, code):
            return
        if (code == EXIT_BOOT_FAILED or slot.boot_error) and not (self.reloader and self.ever_ready):
            # Every worker would fail the same way: report it once and stop, as the reference does.
            logger.error("The entry script cannot be served.\n%s", slot.boot_error or f"worker exited with {code}")
            self.exit_code, self.stopping = EXIT_BOOT_FAILED, True
            return
        if (code == EXIT_SETUP_FAILED or slot.setup_error) and not self.ever_ready:
            # A setting the workers cannot honour: restarting them would fail the same way, forever.
            logger.error("The workers cannot start: %s", slot.setup_error or f"worker exited with {code}")
            self.exit_code, self.stopping = 1, True
            return
        cause, label = exit_cause(slot, code)
        self.report.died(slot.index, cause)
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

    def steer(self) -> None:
        """New connections go to the ready workers that are not being replaced (all, when none is ready)."""
        serving = {slot.sock for slot in self.slots if slot.pid and slot.ready and not slot.retiring}
        self.steering.serve(serving or {slot.sock for slot in self.slots if not slot.fate})

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
                self.retire(due, "recycle", due.retire_note)
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
            if heartbeat_stands_still(slot, self.board, self.settings.heartbeat_timeout, now):
                _signal(slot.pid, signal.SIGKILL)
            note = memory_note(slot, self.settings.max_memory_per_worker)
            if note is not None:
                self.retire(slot, "memory", note)

    def retire(self, slot: _Slot, why: str, note: str) -> None:
        """Stop a worker gracefully (it finishes its in-flight requests) to replace it."""
        slot.retiring, slot.retire_note, slot.recycle_due = why, note, False
        self.steer()  # no new connections for it; SIGTERM once it has read the requests it already has
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
                self.spawn(slot)

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


def _drain(fd: int) -> None:
    try:
        while os.read(fd, 4096):
            pass
    except BlockingIOError:
        pass
