"""What the servers ask of the operating system: descriptors enough for their connections, workers that die
with their parent, freed memory handed back, and a process's state as /proc gives it. Shared by the scoring
server and the gateway (which imports nothing of `scorehost.http`)."""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import logging
import os
import resource
import signal
import sys
from pathlib import Path

__all__ = ["die_with_parent", "process_state", "raise_descriptor_limit", "release_free_memory"]

logger = logging.getLogger("scorehost")
_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def raise_descriptor_limit() -> int:
    """Raise this process's soft RLIMIT_NOFILE to its hard limit (each connection is a descriptor, and a
    common soft limit of 1024 would cap the gateway far below --max-connections); the limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = hard
    if hard == resource.RLIM_INFINITY:  # the kernel refuses more than fs.nr_open
        try:
            with open("/proc/sys/fs/nr_open") as file:
                wanted = int(file.read())
        except (OSError, ValueError):
            return soft
    if soft != resource.RLIM_INFINITY and soft < wanted:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
        except (OSError, ValueError) as error:
            logger.debug("could not raise the descriptor limit from %d to %d: %s", soft, wanted, error)
            return soft
        logger.debug("descriptor limit (RLIMIT_NOFILE) raised from %d to %d", soft, wanted)
        return wanted
    logger.debug("descriptor limit (RLIMIT_NOFILE) is %d", soft)
    return soft


def die_with_parent(parent: int) -> None:
    """In a forked worker: be sent SIGTERM when `parent` (the supervisor) dies, so that a `kill -9` of the
    supervisor leaves no worker serving with no one to restart it. Linux only; the worker's sweep also
    checks getppid() (elsewhere, and should this fail)."""
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if os.getppid() != parent:  # the parent died before prctl() took effect: no signal will come
        os._exit(0)


def release_free_memory() -> None:
    """Hand the heap's free pages back to the system (glibc's malloc_trim): a body of many read-sized
    chunks leaves them in the heap, where they would count as the worker's memory until reused."""
    if _malloc_trim is not None:
        _malloc_trim(0)


def _find_malloc_trim() -> ctypes._NamedFuncPointer | None:
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name).malloc_trim if name else None
    except (OSError, AttributeError):  # not glibc (musl, macOS)
        return None


_malloc_trim = _find_malloc_trim()


def process_state(pid: int, proc: Path = Path("/proc")) -> str | None:
    """The state letter of /proc/PID/stat (R running, S sleeping, T stopped, t traced, Z zombie, ...)."""
    try:
        stat = (proc / str(pid) / "stat").read_text()
    except OSError:
        return None
    # The command name, in parentheses, may hold spaces and parentheses itself: the state follows the last ")".
    fields = stat.rpartition(")")[2].split()
    return fields[0] if fields else None
