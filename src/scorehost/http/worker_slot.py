"""The supervisor's record of one worker, and what it tells from outside the worker: why it died, whether its
heartbeat stands still, whether it grew past `--max-memory-per-worker`."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
from dataclasses import dataclass

from scorehost.http.lifeline import HeartbeatBoard
from scorehost.http.procfs import oom_kills, process_state, resident_bytes
from scorehost.http.worker import EXIT_STUCK

__all__ = ["WorkerSlot", "exit_cause", "heartbeat_stands_still", "memory_note", "send_signal"]

logger = logging.getLogger("scorehost.supervisor")

_MIB = 1024 * 1024


@dataclass
class WorkerSlot:
    index: int  # 1..N within its generation: the number the log gives it
    sock: socket.socket
    cell: int = 0  # its heartbeat counter on the board
    generation: int = 0  # which version of the script it loads (--reload starts a new one per change)
    fate: str = ""  # "leaving": replaced by a reload, not restarted; "dropped": a reload's worker, abandoned
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
    retiring: str = ""  # "memory", "recycle" or "reload": stopped gracefully, to be replaced
    stop_at: float = 0.0  # when to send it SIGTERM (0: sent)
    retire_by: float = 0.0
    retire_note: str = ""
    recycle_due: bool = False


def exit_cause(slot: WorkerSlot, code: int) -> tuple[str, str]:
    """Why the worker is gone, as the log says it, and the restart metric's label."""
    if slot.silenced:
        return slot.silenced, "hung"
    if slot.retiring:
        return slot.retire_note, slot.retiring
    if slot.setup_error:
        return f"failed to set itself up ({slot.setup_error})", "exit"
    if slot.boot_error:  # a replacement that loaded a broken script (--reload: the old workers serve on)
        return f"could not load the entry script: {slot.boot_error.splitlines()[0]}", "exit"
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


def heartbeat_stands_still(slot: WorkerSlot, board: HeartbeatBoard, limit: float, now: float) -> bool:
    """Note a beat, or, once the worker has been silent past `limit` (0: never), say why in `slot.silenced` and
    return True: it is to be killed."""
    beats = board.read(slot.cell)
    if beats != slot.beats:
        slot.beats, slot.beat_at = beats, now
        return False
    silent = now - slot.beat_at
    if not limit or silent <= limit or slot.silenced:
        return False
    state = process_state(slot.pid)
    if state is None or state in "ZX":
        return False  # it is exiting: reaped next round
    if state == "T":
        why = "was stopped (SIGSTOP/SIGTSTP)"
    elif state == "t":
        why = "was stopped by a debugger (ptrace)"
    else:
        why = "is stuck in code that holds the GIL (a C call that never lets Python run)"
    slot.silenced = f"{why}: no heartbeat for {silent:.1f} s (--heartbeat-timeout {limit:g}); killed"
    return True


def memory_note(slot: WorkerSlot, limit: int | None) -> str | None:
    """When the worker's resident memory is past `limit`: log it, and return the note its exit will carry."""
    if limit is None or slot.retiring:
        return None
    rss = resident_bytes(slot.pid)
    if rss is None or rss <= limit:
        return None
    logger.warning(
        "worker %d (pid %d) uses %.0f MiB, past --max-memory-per-worker (%.0f MiB): it finishes its "
        "in-flight requests and is replaced",
        slot.index,
        slot.pid,
        rss / _MIB,
        limit / _MIB,
    )
    limits = f"its memory (RSS {rss / _MIB:.0f} MiB) passed --max-memory-per-worker ({limit / _MIB:.0f} MiB)"
    return f"was replaced: {limits}"


def send_signal(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signum)
