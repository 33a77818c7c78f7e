"""`serve --reload`: a new generation of workers when the entry script or its folder changes, rolled in without
dropping a request.

The supervisor polls the script's folder (`scorehost.http.watch`) twice a second. Once a change has settled (a
scan finds nothing newer), it starts a worker on each of a second set of listening sockets in the port's
SO_REUSEPORT group: they import the script afresh and run `init()`, while steering (`scorehost.http.steering`)
keeps new connections on the serving workers. When all the new workers are ready, new connections go to them,
and the old ones finish their requests and stop (as `--max-requests` replaces a worker). If a new worker fails
to start (the script no longer imports, `init()` raises), the others of its generation are stopped and the old
workers serve on: the log says why, and the next change tries again. A change made while a generation is
loading replaces that generation.

A socket whose worker is gone stays in the group, unused and never steered to, for the next generation:
closing it would move another socket to its place in the group, under the steering program's feet. Nothing of
this runs per request: the workers do not know they can be replaced.
"""

from __future__ import annotations

import logging
import signal
import socket
from pathlib import Path
from typing import TYPE_CHECKING

from scorehost.config import ServeSettings
from scorehost.http.granian_front import LISTEN_BACKLOG
from scorehost.http.watch import SourceWatcher, is_code
from scorehost.http.worker_slot import WorkerSlot, exit_cause, send_signal
from scorehost.telemetry.prometheus import mark_worker_dead

if TYPE_CHECKING:
    from scorehost.http.supervisor import Supervisor

__all__ = ["LANES_PER_WORKER", "POLL_S", "Reloader", "reload_problem"]

logger = logging.getLogger("scorehost.supervisor")

POLL_S = 0.5  # between scans; a change acts once a scan finds nothing newer: edits settle for as long
# Sockets (and heartbeat cells) per worker: the serving generation, one loading, and two finishing requests.
LANES_PER_WORKER = 4

Lane = tuple[socket.socket, int]  # a listening socket of the group, and a heartbeat cell


class Reloader:
    """Watches the entry script's folder for the supervisor and rolls in new generations of its workers."""

    def __init__(self, supervisor: Supervisor, folder: Path, workers: int) -> None:
        self.supervisor = supervisor
        self.watcher = SourceWatcher(folder)
        self.workers = workers
        self.lanes = workers  # made so far: the first generation's are the supervisor's own
        self.idle: list[Lane] = []
        self.serving = 0  # the generation that serves
        self.newest = 0
        self.loading: list[WorkerSlot] = []  # the next generation, until all its workers are ready or one fails
        self.pending: set[str] = set()  # changes not acted on yet
        self.scan_at = 0.0
        logger.info(
            "--reload: watching %d file(s) under %s (code, configuration and model files)",
            self.watcher.watched,
            folder,
        )

    def tick(self, now: float) -> None:
        """On every round of the supervisor's loop: scan when due; start a generation once changes settled."""
        if now < self.scan_at:
            return
        self.scan_at = now + POLL_S
        supervisor = self.supervisor
        changes = self._absorb() if self._loading() else self.watcher.changes()
        if changes:
            self.pending.update(changes)
        elif self.pending and supervisor.ever_ready and not supervisor.stopping:
            self._start()

    def _loading(self) -> bool:
        """Whether some worker's init() may be running: a reload's, one of the first workers', or one of a
        generation dropped while loading, until it is gone."""
        dropped = any(slot.fate == "dropped" for slot in self.supervisor.slots)
        return bool(self.loading) or not self.supervisor.announced or dropped

    def _absorb(self) -> list[str]:
        """The changes since the last scan, less what init() may have written beside the script (a model it trains
        and saves, a cache): no edit of the user's, and a reload for it would write it again, forever."""
        return [path for path in self.watcher.changes() if is_code(path)]

    def on_ready(self, slot: WorkerSlot) -> None:
        """A worker is ready: when it completes the loading generation, that generation takes over."""
        if slot not in self.loading:  # one of the first workers, or a restarted one
            self.pending.update(self._absorb())  # its init() is over: what it wrote beside the script is no edit
            return
        if not all(other.ready for other in self.loading):
            return
        self.pending.update(self._absorb())
        supervisor = self.supervisor
        new, self.loading = self.loading, []
        old = [other for other in supervisor.slots if other.generation == self.serving and not other.fate]
        self.serving = new[0].generation
        for other in old:
            other.fate = "leaving"
            if other.pid:
                if not other.retiring:
                    supervisor.retire(other, "reload", "was replaced by the reloaded script")
            else:  # waiting for its restart: nothing to stop
                self._remove(other)
        supervisor.steer()
        logger.info(
            "reloaded: %d new worker(s) serving (pid %s); the previous ones finish their requests and stop",
            len(new),
            ", ".join(str(other.pid) for other in new),
        )

    def on_exit(self, slot: WorkerSlot, pid: int, code: int) -> bool:
        """A worker is gone: True when it was a reload's to handle (replaced, abandoned, or failing to start);
        such a worker is not restarted."""
        failed = slot in self.loading
        if not slot.fate and not failed:
            return False
        if self.supervisor.metrics is not None:
            mark_worker_dead(pid)
        if failed:
            why = slot.boot_error or slot.setup_error or exit_cause(slot, code)[0]
            self.pending.update(self._absorb())
            self._abandon()
            logger.error(
                "reload failed: the changed script cannot be served; the previous version serves on. Fix it and "
                "save again.\n%s",
                why,
            )
        elif slot.fate == "dropped":  # a sibling of a failed worker, or of a change saved again: stopped mid-init()
            self.pending.update(self._absorb())
        self._remove(slot)
        return True

    def close(self) -> None:
        """Close the sockets no worker uses (the supervisor closes its workers')."""
        for sock, _ in self.idle:
            sock.close()
        self.idle = []

    def _start(self) -> None:
        if self.loading:
            logger.info("--reload: changed again; the workers loading the previous change are stopped")
            self._abandon()
        try:
            lanes = self._take_lanes()
        except OSError as error:
            self.pending.clear()
            logger.error("reload failed: no socket for the new workers (%s); the previous version serves on", error)
            return
        if lanes is None:
            return  # two generations are still finishing their requests: the next scan tries again
        changed, supervisor = sorted(self.pending), self.supervisor
        self.pending.clear()
        shown = ", ".join(changed[:3]) + (f" and {len(changed) - 3} more" if len(changed) > 3 else "")
        logger.info(
            "--reload: %s changed; starting %d new worker(s), the current ones serve until they are ready",
            shown,
            len(lanes),
        )
        self.newest += 1
        for index, (sock, cell) in enumerate(lanes, start=1):
            slot = WorkerSlot(index=index, sock=sock, cell=cell, generation=self.newest)
            supervisor.slots.append(slot)
            self.loading.append(slot)
        for slot in self.loading:
            supervisor.spawn(slot)

    def _take_lanes(self) -> list[Lane] | None:
        """A lane for each new worker, made (up to LANES_PER_WORKER per worker) where none is idle."""
        supervisor = self.supervisor
        while len(self.idle) < self.workers and self.lanes < self.workers * LANES_PER_WORKER:
            sock = _bind_beside(supervisor.slots[0].sock)
            supervisor.steering.join(sock)
            supervisor.steer()  # away from it before it listens: no connection for it until its worker is ready
            try:
                sock.listen(LISTEN_BACKLOG)
            except OSError:
                sock.close()
                raise
            self.idle.append((sock, self.lanes))
            self.lanes += 1
        if len(self.idle) < self.workers:
            return None
        taken, self.idle = self.idle[: self.workers], self.idle[self.workers :]
        return taken

    def _abandon(self) -> None:
        """Stop the loading generation at once: it serves nobody yet."""
        for slot in self.loading:
            slot.fate = "dropped"
            if slot.pid:
                send_signal(slot.pid, signal.SIGKILL)
        self.loading = []

    def _remove(self, slot: WorkerSlot) -> None:
        """The slot's worker is gone for good: its lane waits for another generation."""
        supervisor = self.supervisor
        supervisor.slots.remove(slot)
        self.idle.append((slot.sock, slot.cell))
        supervisor.steer()


def _bind_beside(sock: socket.socket) -> socket.socket:
    """A new socket bound to `sock`'s address and port, to join its SO_REUSEPORT group once it listens."""
    new = socket.socket(sock.family, socket.SOCK_STREAM)
    try:
        new.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        new.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        new.bind(sock.getsockname())
    except OSError:
        new.close()
        raise
    new.set_inheritable(True)
    return new


def reload_problem(settings: ServeSettings) -> str | None:
    """Why `--reload` cannot serve with `settings`, naming the fix; None when it can."""
    if settings.preload:
        return (
            "--reload starts new workers that each run init(), and --preload runs init() once in the supervisor, "
            "which cannot load a changed script again: drop --preload (SCOREHOST_PRELOAD / WORKER_PRELOAD) while "
            "developing"
        )
    if settings.uds is not None:
        return (
            "--reload hands connections from the old workers to the new ones on a TCP port only: serve on --port "
            "instead of --uds while developing"
        )
    return None
